#!/usr/bin/env python3
"""tools/bench/floor-gap --runs 1 on the real kvmlet and floor: every default variant's options are
accepted and its guest reaches every phase (each span measured), and the floor ran. Timings are
not checked (benchmarks only). Usage: check_floor_gap.py OUT_DIR [floor-gap options...]"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main():
    out = Path(sys.argv[1])
    r = subprocess.run([sys.executable, str(ROOT / "tools/bench/floor-gap"), "--out", str(out), "--runs", "1",
                        "--warmups", "0", *sys.argv[2:]], capture_output=True, text=True, timeout=600)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        print(f"check_floor_gap: floor-gap failed with status {r.returncode}", file=sys.stderr)
        return 1
    doc = json.loads((out / "floor-gap.json").read_text())
    problems = []
    if len(doc["variants"]) < 6:
        problems.append(f"expected the 6 default variants, got {list(doc['variants'])}")
    for name, s in doc["summary"].items():
        if s["wall_s"]["n"] != 1 or not s["wall_s"]["median"] > 0:
            problems.append(f"{name}: no wall time measured")
        if name == "floor":
            continue
        missing = [k for k, v in s["spans_median_s"].items() if v is None or v < 0]
        if missing:
            problems.append(f"{name}: spans not measured: {', '.join(missing)}")
        run = doc["per_run"][name][0]
        if not run["exits"].get("pio"):
            problems.append(f"{name}: the guest made no port I/O exit (its boot-timer write)")
    for p in problems:
        print(f"check_floor_gap: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
