#!/usr/bin/env python3
"""CTest check of tools/bench/density: runs it (arguments after the output directory go to it) and
fails unless its report holds together:
  - every backend has a row for every N, measured or skipped with a reason; kvmlet is measured
    (a kvmlet row is never skipped: without /dev/kvm it fails);
  - a measured row started N instances per run, all came up, 0 failures; its creation rate is
    up / span and positive; start -> first output p50 <= p90 <= p99 <= max, all > 0 and within
    the span;
  - memory per instance is > 0, the private part at most the RSS, and for a VM below its guest
    RAM (the tiny guest touches a few pages of it); the cgroup figure when the cgroup was usable;
  - every target is reported (met, not met or not judged);
  - density.md's table has one row per backend and N.

Usage: check_density.py OUT_DIR [tools/bench/density args...]
       check_density.py --report-only OUT_DIR    (check a report already written)
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/pylib"))

from kvmlet_bench import report  # noqa: E402

BACKENDS = ("kvmlet", "runc", "qemu")
VMS = ("kvmlet", "qemu")


def row_problems(row, doc):
    where = f"{row.get('backend')} N={row.get('n')}"
    status = row.get("status")
    if status == "skipped":
        if row.get("backend") == "kvmlet":
            return [f"{where}: kvmlet skipped ({row.get('skipped')!r}): a kvmlet row must be measured"]
        return [] if str(row.get("skipped") or "").strip() else [f"{where}: skipped without a reason"]
    if status != "measured":
        return [f"{where}: {status}: {row.get('error')}"]
    found, n, s = [], row["n"], row.get("summary") or {}
    batches = row.get("batches") or []
    if not batches or s.get("runs") != len(batches) or len(batches) != doc.get("runs"):
        found.append(f"{where}: {len(batches)} batches, summary says {s.get('runs')}, the run asked for {doc.get('runs')}")
    for b in batches:
        if b.get("n") != n or b.get("up") != n or b.get("running_when_measured") != n:
            found.append(f"{where} run {b.get('run')}: {b.get('up')} of {b.get('n')} up, "
                         f"{b.get('running_when_measured')} running when measured")
        if b.get("failures"):
            found.append(f"{where} run {b.get('run')}: failures {b['failures'][:3]}")
        span, rate = b.get("span_s"), b.get("per_second")
        if not span or not rate or span <= 0 or abs(rate * span - b.get("up", 0)) > 1e-6 * max(1, n):
            found.append(f"{where} run {b.get('run')}: creation rate {rate}/s over {span} s for {b.get('up')} up")
        times = b.get("first_output_s") or []
        if len(times) != b.get("up") or any(not 0 < t <= (span or 0) + 1e-9 for t in times):
            found.append(f"{where} run {b.get('run')}: first-output times outside (0, span]: {times[:5]}...")
    if s.get("started") != n * len(batches) or s.get("up") != s.get("started") or s.get("failures") != 0:
        found.append(f"{where}: started {s.get('started')}, up {s.get('up')}, failures {s.get('failures')} "
                     f"({s.get('first_failure')})")
    if not (s.get("per_second_median") or 0) > 0:
        found.append(f"{where}: no creation rate")
    fo = s.get("first_output_s") or {}
    ordered = [fo.get(k) for k in ("p50", "p90", "p99", "max")]
    if any(v is None for v in ordered) or not 0 < ordered[0] <= ordered[1] <= ordered[2] <= ordered[3]:
        found.append(f"{where}: first-output percentiles not ordered or not positive: {fo}")
    found += memory_problems(where, row, s, doc)
    return found


def memory_problems(where, row, s, doc):
    found = []
    ram = doc.get("guest_memory_bytes") or 0
    bound = ram if row["backend"] in VMS else 1 << 30   # a container has no guest RAM: a sanity bound
    rss, private = s.get("rss_without_guest_bytes"), s.get("private_without_guest_bytes")
    if rss is None or not 0 < rss < bound:
        found.append(f"{where}: RSS without guest RAM {rss} per instance, not in (0, {bound})")
    if private is None or not 0 < private <= (rss or 0):
        found.append(f"{where}: private {private} per instance, not in (0, RSS {rss}]")
    if not (doc.get("memory_method") or {}).get("unusable"):
        for key in ("cgroup_current_per_instance_bytes", "cgroup_peak_per_instance_bytes"):
            v = s.get(key)
            if v is None or not 0 < v < bound:
                found.append(f"{where}: {key} {v}, not in (0, {bound})")
        now, peak = s.get("cgroup_current_per_instance_bytes"), s.get("cgroup_peak_per_instance_bytes")
        if now and peak and now > peak * (1 + 1e-9):
            found.append(f"{where}: cgroup charge {now} per instance above its peak {peak}")
    return found


def problems_with(doc, markdown):
    found = []
    rows = doc.get("rows") or []
    sizes = doc.get("sizes") or []
    want = [(b, n) for b in BACKENDS for n in sizes]
    have = [(r.get("backend"), r.get("n")) for r in rows]
    if have != want:
        found.append(f"rows {have}, want {want}")
    for row in rows:
        found += row_problems(row, doc)
    targets = doc.get("targets") or []
    if len(targets) != 4 or any(t.get("holds") not in (True, False, None) or not t.get("value") for t in targets):
        found.append(f"targets: {targets}")
    try:
        _, table = report.parse_markdown_table(markdown)
        if [(r[0], int(r[1])) for r in table] != have:
            found.append(f"density.md rows {[(r[0], r[1]) for r in table]}, want {have}")
    except (ValueError, IndexError) as e:
        found.append(f"density.md: malformed table: {e}")
    return found


def check(out):
    try:
        doc = json.loads((out / "density.json").read_text())
        markdown = (out / "density.md").read_text()
    except (OSError, ValueError) as e:
        print(f"FAIL: no report in {out}: {e}")
        return 1
    found = problems_with(doc, markdown)
    for f in found:
        print(f"FAIL: {f}")
    if found:
        return 1
    measured = [f"{r['backend']} N={r['n']}" for r in doc["rows"] if r["status"] == "measured"]
    skipped = [f"{r['backend']} N={r['n']} ({r['skipped']})" for r in doc["rows"] if r["status"] == "skipped"]
    print(f"PASS: tools/bench/density measured {', '.join(measured)}"
          + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "--report-only":
        return check(Path(sys.argv[2]))
    out = Path(sys.argv[1])
    args = [*sys.argv[2:], "--out", str(out)]
    r = subprocess.run([sys.executable, str(ROOT / "tools/bench/density"), *args])
    if r.returncode != 0:
        print(f"FAIL: tools/bench/density {' '.join(args)} exited with {r.returncode}")
        return 1
    return check(out)


if __name__ == "__main__":
    sys.exit(main())
