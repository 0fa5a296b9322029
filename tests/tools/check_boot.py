#!/usr/bin/env python3
"""CTest check of tools/bench/boot on the tiny boot-timer guest.

Usage: check_boot.py KVMLET GUEST OUT_DIR
Exits 77 (skipped) when KVMLET has no --timeline option yet or /dev/kvm cannot be used. Fails
unless the report has every phase the tiny guest reaches, for both runs, with the boot-timer
write between the first KVM_RUN and the process exit in each, and all its files.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/pylib"))

from kvmlet_bench import report  # noqa: E402
from kvmlet_bench.guest import kvm_unusable  # noqa: E402

RUNS = 2
EXPECTED = ["process_start", "args_parsed", "vm_created", "memory_ready", "devices_ready", "kernel_loaded",
            "first_kvm_run", "first_console_byte", "boot_timer", "shutdown_request", "process_exit"]


def fail(message):
    print(f"check_boot: {message}", file=sys.stderr)
    return 1


def main():
    kvmlet, guest, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    help_text = subprocess.run([str(kvmlet), "run", "--help"], capture_output=True, text=True)
    if "--timeline" not in help_text.stdout + help_text.stderr:
        print(f"check_boot: skipped: {kvmlet} has no --timeline option yet")
        return 77
    if kvm_unusable():
        print(f"check_boot: skipped: {kvm_unusable()}")
        return 77
    r = subprocess.run([str(ROOT / "tools/bench/boot"), "--runs", str(RUNS), "--kvmlet", str(kvmlet),
                        "--kernel", str(guest), "--out", str(out)], stdout=subprocess.PIPE, text=True)
    print(r.stdout)
    if r.returncode != 0:
        return fail(f"tools/bench/boot exited with {r.returncode}")
    try:
        headers, rows = report.parse_markdown_table(r.stdout)
    except ValueError as e:
        return fail(f"malformed table: {e}")
    runs_of = {row[0]: row[1] for row in rows}
    for phase in EXPECTED + ["reaped (outside)"]:
        if runs_of.get(phase) != str(RUNS):
            return fail(f"phase {phase}: reached in {runs_of.get(phase)} runs, expected {RUNS}")
    with open(out / "runs.csv") as f:
        by_run = {}
        for line in csv.DictReader(f):
            by_run.setdefault(line["run"], {})[line["phase"]] = int(line["wall_us"])
    for run, t in by_run.items():
        if not t["first_kvm_run"] <= t["boot_timer"] <= t["process_exit"]:
            return fail(f"run {run}: boot_timer at {t['boot_timer']} µs is not between first_kvm_run "
                        f"({t['first_kvm_run']}) and process_exit ({t['process_exit']})")
    doc = json.loads((out / "boot.json").read_text())
    for run in doc["per_run"]:
        if run["stop"].get("kind") != "reset":
            return fail(f"a run stopped with {run['stop']}, expected a reset")
        if run["exits"]["total"].get("pio", 0) < 1:
            return fail("a run counted no PIO exit (the boot-timer write is one)")
    for name in ("boot.md", "boot.json", "runs.csv", "summary.csv", "boot.gp"):
        if not (out / name).is_file():
            return fail(f"{name} was not written")
    if any(os.access(Path(d) / "gnuplot", os.X_OK) for d in os.environ.get("PATH", "").split(":")) \
            and not (out / "boot.png").is_file():
        return fail("gnuplot is installed but boot.png was not drawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
