#!/usr/bin/env python3
"""Runs tools/bench/snapshot quickly (--runs 1 --clones 2) and checks its JSON: every row there and
measured (a number for each run), and the figures in the order they must be in: per process,
first guest instruction <= first console byte (<= ready, booted); each process's PSS <= its RSS;
every booted VM has its 32 MiB fill resident, and the clones, sharing the snapshot's page cache,
have a smaller total PSS than as many booted VMs. No timing is judged. The checker itself must
refuse a report with a row missing.

Usage: check_snapshot_bench.py OUT_DIR KVMLET GUEST_ELF
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROWS = ["boot_first_instruction", "boot_first_console_byte", "boot_ready", "snapshot_create",
        "restore_first_instruction", "restore_first_console_byte", "restore_rss_at_first_byte",
        "restore_guest_ram_resident_1s", "restore_page_faults_1s", "clones_rss", "clones_pss",
        "clones_guest_ram_resident", "booted_rss", "booted_pss", "booted_guest_ram_resident"]
FILL = 32 << 20  # tests/guests/snapshot_fill.c
CLONES = 2


def problems_of(doc):
    rows = {r.get("key"): r for r in doc.get("rows", [])}
    out = [f"row {key} missing" for key in ROWS if key not in rows]
    if out:
        return out
    for key in ROWS:
        samples = rows[key].get("samples")
        if not isinstance(samples, list) or len(samples) != 1 or not all(
                isinstance(v, (int, float)) and v > 0 for v in samples):
            out.append(f"row {key}: samples {samples!r}, expected one positive number")
    if out:
        return out
    m = {key: rows[key]["median"] for key in ROWS}
    for a, b in [("boot_first_instruction", "boot_first_console_byte"), ("boot_first_console_byte", "boot_ready"),
                 ("restore_first_instruction", "restore_first_console_byte"), ("clones_pss", "clones_rss"),
                 ("booted_pss", "booted_rss")]:
        if not m[a] <= m[b]:
            out.append(f"{a} ({m[a]}) > {b} ({m[b]})")
    if m["booted_guest_ram_resident"] < CLONES * FILL:
        out.append(f"{CLONES} booted VMs have {m['booted_guest_ram_resident']} bytes of guest RAM resident, "
                   f"less than their fills")
    if not m["clones_pss"] < m["booted_pss"]:
        out.append(f"the clones' PSS ({m['clones_pss']}) is not below the booted VMs' ({m['booted_pss']})")
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    out, kvmlet, guest = sys.argv[1:]
    run = subprocess.run([sys.executable, str(ROOT / "tools/bench/snapshot"), "--runs", "1", "--clones", str(CLONES),
                          "--kvmlet", kvmlet, "--guest", guest, "--out", out],
                         capture_output=True, text=True, timeout=500)
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        print(f"FAIL: tools/bench/snapshot exit status {run.returncode}: {run.stderr.strip()}")
        return 1
    doc = json.loads((Path(out) / "snapshot.json").read_text())
    problems = problems_of(doc)
    for p in problems:
        print(f"FAIL: {p}")
    doctored = dict(doc, rows=[r for r in doc["rows"] if r["key"] != "restore_first_console_byte"])
    if not problems_of(doctored):
        print("FAIL: the checker accepted a report without the restore's first console byte")
        return 1
    print("ok: every row measured" if not problems else "")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
