"""The report of `tools/compare --workload full-os`: the table, the idle cost per instance with
N started at once, the seed's claims checked, compare.json and a plot (gnuplot)."""

import json
import shlex
import time

from . import full_os, guest, plot, report, stats

MB = 1000 * 1000
CLAIM_VM_START_S = 60          # "a VM starts in minutes"
CLAIM_CONTAINER_S = 0.050      # "a container in 50 ms"
CLAIM_VM_BYTES = 700 * MB      # "a VM costs ~700 MB"
HEADERS = ["row", "status", "ready median s", "ready max s", "CPU to ready s", "peak at ready MiB",
           "steady MiB", "idle CPU %", "disk: image + kernel + initramfs / bundle", "disk: runtime + libs"]
GROUP_HEADERS = ["row", "instances at once", "status", "ready median s", "ready max s",
                 "steady MiB per instance", "peak at ready MiB per instance", "idle CPU % per instance"]


def _median(values):
    values = [v for v in values if v is not None]
    return stats.median(values) if values else None


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def summarize(results):
    """Medians (and the slowest ready) over instance results."""
    if not results:
        return None
    keys = ("ready_s", "cpu_s_at_ready", "peak_bytes_at_ready", "current_bytes_at_ready", "steady_bytes",
            "idle_cpu_share")
    out = {k: _median([x[k] for x in results]) for k in keys}
    out["ready_max_s"] = _max([x["ready_s"] for x in results])
    out["failed_units"] = sorted({x["failed_units"] for x in results if x["failed_units"] is not None})
    return out


def status(r):
    if r.skip:
        return f"skipped: {r.skip}"
    if r.error:
        return f"failed: {r.error.splitlines()[0]}"
    failed = summarize(r.runs)["failed_units"]
    units = "" if failed == ["none"] else f"; failed units: {', '.join(failed)}"
    return f"measured ({len(r.runs)} runs{units})"


def _pct(share):
    return "-" if share is None else f"{share * 100:.1f}"


def disk_total(r):
    return sum(r.disk_bytes.values()) if r.disk_bytes else None


def disk_cell(r):
    if not r.disk_bytes:
        return "-"
    parts = " + ".join(f"{report.fmt_size(b)} {p}" for p, b in r.disk_bytes.items())
    return parts if len(r.disk_bytes) == 1 else f"{report.fmt_size(disk_total(r))} ({parts})"


def table_row(r):
    s = summarize(r.runs) if not r.skip and not r.error else None
    cells = [r.name, status(r)]
    if s:
        cells += [report.fmt_s(s["ready_s"], 1), report.fmt_s(s["ready_max_s"], 1),
                  report.fmt_s(s["cpu_s_at_ready"], 1), report.fmt_mib(s["peak_bytes_at_ready"]),
                  report.fmt_mib(s["steady_bytes"]), _pct(s["idle_cpu_share"])]
    else:
        cells += ["-"] * 6
    return cells + [disk_cell(r), report.fmt_size(r.runtime_bytes)]


def group_rows(r, instances):
    out = []
    for n in instances:
        g = r.groups.get(n)
        if r.skip:
            out.append([r.name, str(n), f"skipped: {r.skip}"] + ["-"] * 5)
        elif g is None:
            out.append([r.name, str(n), "failed: not measured (an earlier run failed)"] + ["-"] * 5)
        elif isinstance(g, str):
            out.append([r.name, str(n), g if g.startswith("failed") else f"skipped: {g}"] + ["-"] * 5)
        else:
            s = summarize(g)
            measured = f"measured ({len(g)} runs of 1)" if n == 1 else f"measured ({n} instances)"
            out.append([r.name, str(n), measured, report.fmt_s(s["ready_s"], 1), report.fmt_s(s["ready_max_s"], 1),
                        report.fmt_mib(s["steady_bytes"]), report.fmt_mib(s["peak_bytes_at_ready"]),
                        _pct(s["idle_cpu_share"])])
    return out


def verdicts(rows, absolute_times_mean_something):
    """The seed's claims against the measured rows: each {what, value, limit, holds}."""
    by = {r.name: (summarize(r.runs) if r.runs and not r.error else None) for r in rows}
    vms = {n: by[n] for n in full_os.VM_ROWS if by.get(n)}
    claims = []

    def add(what, value, limit, holds):
        claims.append({"what": what, "value": value, "limit": limit, "holds": holds})

    add("a VM starts in minutes",
        ", ".join(f"{n} {s['ready_s']:.1f} s" for n, s in vms.items()) or "no VM measured",
        f"≥ {CLAIM_VM_START_S} s to ready",
        (all(s["ready_s"] >= CLAIM_VM_START_S for s in vms.values()) if vms else None)
        if absolute_times_mean_something else None)
    c = by.get("runc")
    add("a container starts in 50 ms", f"runc {c['ready_s']:.2f} s to ready" if c else "runc not measured",
        "~50 ms (within 2x)", (CLAIM_CONTAINER_S / 2 <= c["ready_s"] <= CLAIM_CONTAINER_S * 2 if c else None)
        if absolute_times_mean_something else None)
    mem = {n: s["steady_bytes"] for n, s in vms.items() if s["steady_bytes"]}
    add("a VM costs ~700 MB (memory: steady cgroup charge)",
        ", ".join(f"{n} {report.fmt_size(b)}" for n, b in mem.items()) or "unknown", "~700 MB (within 2x)",
        all(CLAIM_VM_BYTES / 2 <= b <= CLAIM_VM_BYTES * 2 for b in mem.values()) if mem else None)
    disks = {r.name: disk_total(r) for r in rows if r.kind == "vm" and disk_total(r)}
    add("a VM costs ~700 MB (disk: image + kernel + initramfs)",
        ", ".join(f"{n} {report.fmt_size(b)}" for n, b in disks.items()) or "unknown", "~700 MB (within 2x)",
        all(CLAIM_VM_BYTES / 2 <= b <= CLAIM_VM_BYTES * 2 for b in disks.values()) if disks else None)
    return claims


def notes(args):
    return [
        f"{args.runs} run(s) per row, one instance at a time, rows alternating; then "
        f"{', '.join(map(str, args.instances))} instance(s) of each row started at once (one round each). "
        "Ready: from the start of the VMM or `runc run` to the ready service's first console line "
        "(`kvmlet-ready: uptime`: systemd reached multi-user.target).",
        "Each instance runs in a cgroup v2 of its own (runc in runtime/, the container in container/ below it). CPU to "
        "ready: the cgroup's cpu.stat usage_usec then (VMM, vCPU threads, or runc and every process of the "
        "container). Peak at ready: memory.peak then. Steady: memory.current after an idle window of "
        f"{args.idle_seconds:g} s once all instances of the round were ready; idle CPU: the cgroup's CPU time in that "
        "window over its length. Not counted: file pages already in the page cache (the VM's disk copy, written by "
        "this tool; the bundle's files after the first container read them).",
        f"VMs: {args.vm_cpus} vCPU(s), {args.memory} RAM, no network device, root on a copy of rootfs.ext4 per "
        f"instance (made before the start), kernel command line `{full_os.CMDLINE}`.",
        f"Container: systemd as PID 1 (not the ready service alone). config.json is made at start from the bundle's: "
        f"{full_os.CONTAINER_NEEDS}. Masked (/dev/null bound over the unit file): "
        + "; ".join(f"{u} ({m['why']})" for u, m in full_os.CONTAINER_MASKED.items()) + ". No network but lo.",
        "Disk: du (allocated blocks: rootfs.ext4 is sparse, 1 GiB apparent) of the image, Debian's kernel (bzImage) "
        "and our initramfs, or of the bundle (rootfs + config.json); runtime: the binary, the shared libraries ldd "
        "lists and QEMU's firmware (qboot.rom for microvm, SeaBIOS bios-256k.bin for q35; kvmlet without debug "
        "information). The host kernel the container shares is not counted.",
    ]


def claim_lines(claims, absolute):
    word = {True: "holds", False: "does not hold", None: "not judged"}
    lines = ["Claims of the seed (\"a VM starts in minutes, a container in 50 ms\"; \"a VM costs ~700 MB\"):", ""]
    lines += [f"- {c['what']}: {c['value']} (claim: {c['limit']}): **{word[c['holds']]}**" for c in claims]
    if not absolute:
        lines += ["", "Claims about absolute times are not judged here: in an emulated KVM host every peer, its "
                  "guest kernel and the host kernel run translated (10-100x slower); the ratios still compare."]
    return lines


def write_plot(args, rows):
    measured = [r for r in rows if r.runs and not r.error and not r.skip]
    with open(args.out / "compare.dat", "w") as f:
        f.write("# row ready_median_s ready_low_s ready_max_s cpu_s peak_mib steady_mib disk_mib runtime_mib\n")
        for r in rows:
            s = summarize(r.runs) if r in measured else None
            vals = [s["ready_s"], s["ready_s"], s["ready_max_s"], s["cpu_s_at_ready"],
                    (s["peak_bytes_at_ready"] or 0) / report.MiB, (s["steady_bytes"] or 0) / report.MiB] \
                if s else ["?"] * 6
            vals += [(b / report.MiB if b else "?") for b in (disk_total(r), r.runtime_bytes)]
            f.write(f'"{r.name}" ' + " ".join(v if isinstance(v, str) else f"{v:.6f}" for v in vals) + "\n")
    if not measured:
        return None, "no row measured"
    image = f"compare.{args.format}"
    script = "\n".join([
        plot.terminal(args.format, 1500, 520), f"set output {plot.quote(image)}", 'set datafile missing "?"',
        "set multiplot layout 1,3 title "
        + plot.quote(f"Debian 12 with systemd to multi-user.target: {args.runs} run(s) per row"),
        "set style data histograms", "set style fill solid 0.6 border -1", "set boxwidth 0.8",
        "set grid ytics", "set logscale y", "set key below", "set xtics nomirror",
        "set title 'Time to ready: bar median, error bar to the slowest (log)'", "set ylabel 's'",
        "set style histogram errorbars gap 1 lw 1",
        "plot 'compare.dat' using 2:3:4:xtic(1) title 'to ready' lc rgb '#3060a0', "
        "'' using 5:5:5 title 'CPU to ready' lc rgb '#a0a0a0'",
        "set style histogram clustered gap 1",
        "set title 'Memory per instance (log)'", "set ylabel 'MiB'",
        "set arrow 1 from graph 0, first 667.57 to graph 1, first 667.57 nohead dt 2 lc rgb '#c03020'",
        "set label 1 'claim: VM ~700 MB' at graph 0.98, first 800 right tc rgb '#c03020'",
        "plot 'compare.dat' using 6:xtic(1) title 'peak at ready' lc rgb '#3060a0', "
        "'' using 7 title 'steady' lc rgb '#a0a0a0'",
        "set title 'Disk footprint (log)'",
        "plot 'compare.dat' using 8:xtic(1) title 'image + kernel + initramfs / bundle' lc rgb '#3060a0', "
        "'' using 9 title 'runtime + libraries' lc rgb '#a0a0a0'",
        "unset multiplot", ""])
    (args.out / "compare.gp").write_text(script)
    why_not = plot.render(args.out / "compare.gp")
    return (None, why_not) if why_not else (args.out / image, None)


def write(args, rows, command, host, versions_found, cgroups):
    absolute = guest.host_kind() != "emulated KVM host"
    table = report.markdown_table(HEADERS, [table_row(r) for r in rows], right={2, 3, 4, 5, 6, 7})
    groups = report.markdown_table(GROUP_HEADERS, [g for r in rows for g in group_rows(r, args.instances)],
                                   right={1, 3, 4, 5, 6, 7})
    claims = verdicts(rows, absolute)
    commands = [f"- {r.name}: {r.what}" + (f" — `{shlex.join(map(str, r.command))}`" if r.command else "")
                for r in rows]
    versions_line = "; ".join(f"{k}: {v}" for k, v in versions_found.items()) or "unknown"
    text = "\n".join([f"`{command}`", "", f"Host: {host}", "", f"Versions: {versions_line}", "", table, "",
                      "Idle cost per instance with N started at once:", "", groups, "",
                      *(f"- {n}" for n in notes(args)), "", "Rows:", "", *commands, "",
                      *claim_lines(claims, absolute), ""])
    print(text)
    (args.out / "compare.md").write_text("# A Debian system as kvmlet VM, QEMU VMs and a runc container\n\n" + text)
    image, why_not = write_plot(args, rows)
    doc = {
        "schema": "kvmlet-compare-full-os/1", "workload": "full-os", "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": host, "host_kind": guest.host_kind(),
        "versions": versions_found, "runs": args.runs, "instances": args.instances,
        "idle_seconds": args.idle_seconds, "vm_memory": args.memory, "vm_cpus": args.vm_cpus,
        "memory_method": {"cgroup": cgroups.peak_file, "unusable": cgroups.unusable, "enabled": cgroups.enabled},
        "container": {"systemd_as_pid1": True, "masked": full_os.CONTAINER_MASKED, "needs": full_os.CONTAINER_NEEDS},
        "rows": {r.name: {"what": r.what, "kind": r.kind, "status": status(r), "skipped": r.skip, "error": r.error,
                          "command": [str(a) for a in r.command] if r.command else None,
                          "summary": summarize(r.runs) if not r.skip else None, "runs": r.runs,
                          "at_once": {str(n): (g if isinstance(g, str) else {"summary": summarize(g), "instances": g})
                                      for n, g in r.groups.items()},
                          "disk_bytes": r.disk_bytes, "runtime_bytes": r.runtime_bytes}
                 for r in rows},
        "claims": claims, "plot": str(image) if image else None,
    }
    (args.out / "compare.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}/: compare.md compare.json" + (f" {image.name}" if image else ""))
    return why_not
