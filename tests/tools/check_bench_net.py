#!/usr/bin/env python3
"""CTest smoke run of tools/bench/net: a short run that must measure every row and report every
target (met or not: a smoke run on a shared machine says nothing about speed).

Usage: check_bench_net.py TOOL BUILD_DIR OUT_JSON
"""

import json
import subprocess
import sys
from pathlib import Path

ROWS = [f"{kind}_{frame}" for frame in (64, 1500) for kind in ("raw_write", "raw_read", "device_tx", "device_rx")]


def fail(message):
    print(f"check_bench_net: {message}", file=sys.stderr)
    return 1


def main():
    tool, build_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    r = subprocess.run([sys.executable, tool, "--no-build", "--build-dir", build_dir, "--rounds", "1",
                        "--seconds", "0.05", "--batch", "8", "--json", str(out)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    print(r.stdout)
    if r.returncode != 0:
        return fail(f"tools/bench/net exited with {r.returncode}: {r.stderr.strip()}")
    report = json.loads(out.read_text())
    for name in ROWS:
        per_core = report["rows"].get(name, {}).get("per_core", 0)
        if not per_core > 0:
            return fail(f"row {name}: no packet rate")
    if len(report["targets"]) != 4 or not all(0 < t["value"] for t in report["targets"]):
        return fail(f"expected 4 targets with ratios, got {report['targets']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
