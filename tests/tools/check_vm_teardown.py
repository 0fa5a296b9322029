#!/usr/bin/env python3
"""Runs kvmlet_vm_teardown for 3 rounds and checks its report: one JSON line for each kind of VM
(none, split, irqchip, pit), 3 rounds each, every figure a number with min <= median <= max and
the wall times non-negative. A KVM call that fails, or /dev/kvm missing, fails the test.

Usage: check_vm_teardown.py KVMLET_VM_TEARDOWN
"""
import json
import subprocess
import sys

KINDS = ["none", "split", "irqchip", "pit"]


def check(lines):
    """The problems of the probe's output lines, [] if none."""
    problems = []
    rows = {}
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"not JSON: {line!r}")
            continue
        rows[row.get("kind")] = row
    if sorted(rows, key=str) != sorted(KINDS):
        problems.append(f"kinds {sorted(rows, key=str)}, expected {sorted(KINDS)}")
    for kind, row in rows.items():
        if row.get("rounds") != 3:
            problems.append(f"{kind}: {row.get('rounds')} rounds, expected 3")
        for figure in ("create_us", "close_us", "close_cpu_us"):
            stats = row.get(figure)
            if not isinstance(stats, dict) or not all(
                    isinstance(stats.get(k), (int, float)) for k in ("min", "median", "max")):
                problems.append(f"{kind}: {figure} is {stats!r}")
            elif not 0 <= stats["min"] <= stats["median"] <= stats["max"]:
                problems.append(f"{kind}: {figure} out of order: {stats}")
    return problems


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = subprocess.run([sys.argv[1], "--rounds", "3"], capture_output=True, text=True, timeout=240)
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        print(f"FAIL: exit status {run.returncode}: {run.stderr.strip()}")
        return 1
    problems = check(run.stdout.splitlines())
    for p in problems:
        print(f"FAIL: {p}")
    # The checker itself refuses a report with a kind missing and one with figures out of order.
    doctored = [l for l in run.stdout.splitlines() if '"pit"' not in l]
    if not check(doctored):
        print("FAIL: the checker accepted a report without the pit row")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
