#!/usr/bin/env python3
"""CTest check of tools/tenants: runs it with a disk aggressor (arguments after the output directory
go to it) and fails unless its report holds what it claims:
  - every kvmlet setting measured the victim alone and loaded (samples, p50 <= p99, a device-side
    request rate for the victim near its pacing of one read per 2 ms, at least 1/3 of it);
  - the aggressor's disk was granted bytes at the device in every setting, and under the rate
    limiter (8 MiB/s) at most 8 MiB/s plus the bucket's initial fill over the window, and less than
    without it: the limits the table compares really applied;
  - with cgroups, the aggressor's jail cgroup exists (its cpu.stat was read);
  - the runc rows are measured or skipped with a reason; density has a creation rate and the VMM
    overhead of every tenant;
  - tenants.md holds the table (one row per backend and setting).

Usage: check_tenants.py OUT_DIR [tools/tenants args...]
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/pylib"))

from kvmlet_bench import report  # noqa: E402

RATE_BYTES_PER_S = 8 << 20
VICTIM_READS_PER_S = 500


def kvmlet_problems(setting, runs):
    found = []
    for n, run in enumerate(runs):
        where = f"kvmlet {setting} run {n}"
        for phase in ("solo", "loaded"):
            r = run.get(phase)
            if not r:
                found.append(f"{where}: no {phase} phase")
                continue
            if r["samples"] <= 0 or not 0 < r["p50_us"] <= r["p99_us"]:
                found.append(f"{where} {phase}: samples {r['samples']}, p50 {r['p50_us']}, p99 {r['p99_us']}")
            devices = r.get("device") or []
            victim = next((d for d in devices if d["slot"] == 0), None)
            if not victim or victim["device"] != "disk" or victim["requests"] / r["window_s"] < VICTIM_READS_PER_S / 3:
                found.append(f"{where} {phase}: the victim's disk served too few reads: {victim}")
        loaded = run.get("loaded") or {}
        aggressors = [d for d in loaded.get("device", []) if d["slot"] != 0]
        if not aggressors:
            found.append(f"{where}: no aggressor device figures")
            continue
        for d in aggressors:
            rate = d["bytes"] / loaded["window_s"]
            if d["device"] != "disk" or d["bytes"] <= 0:
                found.append(f"{where}: aggressor {d['slot']} was granted nothing")
            # The bucket starts full (size = one second's worth): allow it once over the window.
            limit = RATE_BYTES_PER_S * (1 + 1 / loaded["window_s"]) * 1.1
            if setting in ("rate", "both") and rate > limit:
                found.append(f"{where}: aggressor {d['slot']} got {rate / 2**20:.1f} MiB/s under an 8 MiB/s limit")
        if setting in ("cgroups", "both"):
            periods = loaded.get("cpu_throttled_periods", {})
            if any(v is None for v in periods.values()):
                found.append(f"{where}: a tenant's jail cgroup cpu.stat was not found: {periods}")
    return found


def aggressor_rate(runs):
    rates = []
    for run in runs:
        loaded = run["loaded"]
        rates += [d["bytes"] / loaded["window_s"] for d in loaded["device"] if d["slot"] != 0]
    return sum(rates) / len(rates) if rates else 0


def problems_with(doc, markdown, settings):
    found = []
    results = doc.get("results", {})
    for setting in settings:
        runs = results.get("kvmlet", {}).get(setting)
        if not isinstance(runs, list) or not runs:
            found.append(f"kvmlet {setting}: not measured ({runs!r})")
            continue
        found += kvmlet_problems(setting, runs)
    kv = results.get("kvmlet", {})
    if all(isinstance(kv.get(s), list) for s in ("none", "rate")) and aggressor_rate(kv["rate"]) >= aggressor_rate(kv["none"]):
        found.append(f"the rate limiter did not lower the aggressor's disk rate: "
                     f"{aggressor_rate(kv['rate']) / 2**20:.1f} MiB/s with it, {aggressor_rate(kv['none']) / 2**20:.1f} without")
    for setting, runs in results.get("runc", {}).items():
        if isinstance(runs, str):
            if not runs.strip():
                found.append(f"runc {setting}: skipped without a reason")
        elif not runs or any(r["loaded"]["samples"] <= 0 or r["solo"]["samples"] <= 0 for r in runs):
            found.append(f"runc {setting}: no samples")
    dens = doc.get("density", {})
    k = dens.get("kvmlet", {})
    if not k.get("per_second", 0) > 0 or len(k.get("vmm_rss_without_guest_mib", [])) != doc.get("tenants"):
        found.append(f"density: {k}")
    elif not all(0 < m < 64 for m in k["vmm_rss_without_guest_mib"]):
        found.append(f"density: implausible VMM overheads {k['vmm_rss_without_guest_mib']} MiB")
    try:
        headers, rows = report.parse_markdown_table(markdown)
        names = [(r[0], r[1]) for r in rows]
        want = [(b, s) for b in results for s in settings]
        if names != want:
            found.append(f"tenants.md rows {names}, want {want}")
    except ValueError as e:
        found.append(f"tenants.md: malformed table: {e}")
    return found


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    args = ["--aggressor", "disk", "--victim", "disk-latency", *sys.argv[2:], "--out", str(out)]
    r = subprocess.run([sys.executable, str(ROOT / "tools/tenants"), *args])
    if r.returncode != 0:
        print(f"FAIL: tools/tenants {' '.join(args)} exited with {r.returncode}")
        return 1
    doc = json.loads((out / "tenants.json").read_text())
    settings = list(doc["results"]["kvmlet"])
    found = problems_with(doc, (out / "tenants.md").read_text(), settings)
    for f in found:
        print(f"FAIL: {f}")
    if found:
        return 1
    print(f"PASS: tools/tenants measured {', '.join(settings)} for kvmlet"
          f"{' and runc' if 'runc' in doc['results'] else ''}, and the limits applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
