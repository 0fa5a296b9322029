#!/usr/bin/env python3
"""CTest check of tools/compare: runs it (arguments after the output directory go to it) and fails
unless its Markdown table has exactly the rows kvmlet, floor, qemu, runc and namespaces, each either
measured (numbers in every time and memory cell) or skipped with a reason, and compare.json says
the same; with --kvmlet-arg=ARG, the kvmlet command in compare.md ends with those arguments.

Usage: check_compare.py OUT_DIR [tools/compare args...]
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/pylib"))

from kvmlet_bench import report  # noqa: E402

ROWS = ["kvmlet", "floor", "qemu", "runc", "namespaces"]
NUMERIC = ["wall median ms", "wall p90 ms", "CPU median ms", "largest RSS MiB"]
NUMBER = re.compile(r"^\d+(\.\d+)?$")


def problems_with(markdown, doc, runs):
    """Everything wrong with a compare report, as a list of sentences (empty: it is good)."""
    try:
        headers, rows = report.parse_markdown_table(markdown)
    except ValueError as e:
        return [f"malformed table: {e}"]
    found = []
    for column in ["workload", "status", *NUMERIC]:
        if column not in headers:
            found.append(f"column {column!r} is missing")
    if found:
        return found
    col = {h: i for i, h in enumerate(headers)}
    names = [r[col["workload"]] for r in rows]
    if names != ROWS:
        found.append(f"rows are {names}, expected {ROWS}")
    for r in rows:
        name, status = r[col["workload"]], r[col["status"]]
        if status.startswith("skipped:"):
            if not status[len("skipped:"):].strip():
                found.append(f"{name}: skipped without a reason")
        elif status == f"measured ({runs} runs)":
            for column in NUMERIC:
                if not NUMBER.match(r[col[column]]):
                    found.append(f"{name}: {column} is {r[col[column]]!r}, not a number")
        else:
            found.append(f"{name}: status {status!r} is neither measured ({runs} runs) nor skipped: REASON")
        entry = (doc or {}).get("rows", {}).get(name)
        if entry is None:
            found.append(f"{name}: missing from the JSON")
        elif entry.get("status") != status:
            found.append(f"{name}: JSON status {entry.get('status')!r} differs from the table's")
        elif status.startswith("measured") and len(entry.get("samples", [])) != runs:
            found.append(f"{name}: JSON has {len(entry.get('samples', []))} samples, expected {runs}")
    return found


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, args = Path(sys.argv[1]), sys.argv[2:]
    runs = int(args[args.index("--runs") + 1]) if "--runs" in args else 3
    r = subprocess.run([str(ROOT / "tools/compare"), "--out", str(out), *args], stdout=subprocess.PIPE, text=True)
    print(r.stdout)
    if r.returncode != 0:
        print(f"check_compare: tools/compare exited with {r.returncode}", file=sys.stderr)
        return 1
    try:
        doc = json.loads((out / "compare.json").read_text())
        markdown = (out / "compare.md").read_text()
    except (OSError, ValueError) as e:
        print(f"check_compare: {e}", file=sys.stderr)
        return 1
    found = problems_with(r.stdout, doc, runs) + [f"compare.md: {p}" for p in problems_with(markdown, doc, runs)]
    # --kvmlet-arg=ARG: the kvmlet row's command, as the report shows it, ends with those arguments.
    extra = [a[len("--kvmlet-arg="):] for a in args if a.startswith("--kvmlet-arg=")]
    if extra and not any(line.startswith("- kvmlet:") and line.endswith(" " + " ".join(extra) + "`")
                         for line in markdown.splitlines()):
        found.append(f"compare.md: the kvmlet command does not end with {' '.join(extra)!r}")
    for p in found:
        print(f"check_compare: {p}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
