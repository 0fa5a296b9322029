#!/usr/bin/env python3
"""CTest check of `tools/compare --workload full-os`: runs it (arguments after the output directory
go to it) and fails unless its first Markdown table has exactly the rows kvmlet, qemu-microvm,
qemu-q35 and runc, each either measured (a number in every time and memory cell) or skipped with
a reason; unless its second table (instances at once) has each of those rows for every count
asked for, measured or skipped with a reason; and unless compare.json says the same. A failed row
or a row left out fails.

Usage: check_compare_full_os.py OUT_DIR [tools/compare args...]
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/pylib"))

from kvmlet_bench import report  # noqa: E402

ROWS = ["kvmlet", "qemu-microvm", "qemu-q35", "runc"]
NUMERIC = ["ready median s", "ready max s", "CPU to ready s", "peak at ready MiB", "steady MiB", "idle CPU %"]
GROUP_NUMERIC = ["ready median s", "ready max s", "steady MiB per instance"]
NUMBER = re.compile(r"^\d+(\.\d+)?$")


def tables(markdown):
    """The two tables of the report: the rows, and the instances at once (after its heading)."""
    first = report.parse_markdown_table(markdown)
    rest = markdown.split("Idle cost per instance with N started at once:", 1)
    if len(rest) != 2:
        raise ValueError("no table of instances at once")
    return first, report.parse_markdown_table(rest[1])


def check_cells(where, status, cells, numeric, measured):
    if status.startswith("skipped:"):
        return [] if status[len("skipped:"):].strip() else [f"{where}: skipped without a reason"]
    if not re.match(measured, status):
        return [f"{where}: status {status!r} is neither measured nor skipped: REASON"]
    return [f"{where}: {c} is {cells[c]!r}, not a number" for c in numeric if not NUMBER.match(cells[c])]


def problems_with(markdown, doc, runs, instances):
    """Everything wrong with a full-os report, as sentences (empty: it is good)."""
    try:
        (headers, rows), (gheaders, grows) = tables(markdown)
    except ValueError as e:
        return [f"malformed table: {e}"]
    missing = [c for c in ["row", "status", *NUMERIC] if c not in headers] + \
        [c for c in ["row", "instances at once", "status", *GROUP_NUMERIC] if c not in gheaders]
    if missing:
        return [f"column {c!r} is missing" for c in missing]
    found = []
    named = [dict(zip(headers, r)) for r in rows]
    if [r["row"] for r in named] != ROWS:
        found.append(f"rows are {[r['row'] for r in named]}, expected {ROWS}")
    for r in named:
        found += check_cells(r["row"], r["status"], r, NUMERIC, rf"^measured \({runs} runs(; failed units: .+)?\)$")
        entry = (doc or {}).get("rows", {}).get(r["row"])
        if entry is None:
            found.append(f"{r['row']}: missing from the JSON")
        elif entry.get("status") != r["status"]:
            found.append(f"{r['row']}: JSON status {entry.get('status')!r} differs from the table's")
        elif r["status"].startswith("measured") and len(entry.get("runs", [])) != runs:
            found.append(f"{r['row']}: JSON has {len(entry.get('runs', []))} runs, expected {runs}")
    gnamed = [dict(zip(gheaders, g)) for g in grows]
    expected = [(name, str(n)) for name in ROWS for n in instances]
    if [(g["row"], g["instances at once"]) for g in gnamed] != expected:
        found.append(f"instances-at-once rows are {[(g['row'], g['instances at once']) for g in gnamed]}, "
                     f"expected {expected}")
    for g in gnamed:
        n = g["instances at once"]
        measured = rf"^measured \({runs} runs of 1\)$" if n == "1" else rf"^measured \({n} instances\)$"
        found += check_cells(f"{g['row']} x{n}", g["status"], g, GROUP_NUMERIC, measured)
    return found


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, args = Path(sys.argv[1]), sys.argv[2:]
    runs = int(args[args.index("--runs") + 1]) if "--runs" in args else (1 if "--quick" in args else 3)
    instances = [1] if "--quick" in args else [1, 4, 8]
    if "--instances" in args:
        instances = sorted({int(n) for n in args[args.index("--instances") + 1].split(",")})
    r = subprocess.run([str(ROOT / "tools/compare"), "--workload", "full-os", "--out", str(out), *args],
                       stdout=subprocess.PIPE, text=True)
    print(r.stdout)
    if r.returncode != 0:
        print(f"check_compare_full_os: tools/compare exited with {r.returncode}", file=sys.stderr)
        return 1
    try:
        doc = json.loads((out / "compare.json").read_text())
        markdown = (out / "compare.md").read_text()
    except (OSError, ValueError) as e:
        print(f"check_compare_full_os: {e}", file=sys.stderr)
        return 1
    found = problems_with(r.stdout, doc, runs, instances) + \
        [f"compare.md: {p}" for p in problems_with(markdown, doc, runs, instances)]
    for p in found:
        print(f"check_compare_full_os: {p}", file=sys.stderr)
    if found:
        return 1
    print("check_compare_full_os: every row measured or skipped with a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
