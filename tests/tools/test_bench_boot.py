"""tools/bench/boot end to end, with a stand-in kvmlet whose times are known (fake_kvmlet)."""

import csv
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from kvmlet_bench import report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


class BootBenchmark(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmlet-test-boot-")
        tmp = Path(cls.tmp.name)
        cls.out = tmp / "out"
        kernel = tmp / "kernel.elf"
        kernel.write_bytes(b"\x7fELF")
        env = dict(os.environ, FAKE_KVMLET_COUNTER=str(tmp / "counter"))
        # One warm-up (k = 1), then runs k = 2..11: phase i is at i*k ms.
        cls.result = subprocess.run(
            [sys.executable, str(ROOT / "tools/bench/boot"), "--runs", "10", "--kvmlet", str(HERE / "fake_kvmlet"),
             "--kernel", str(kernel), "--out", str(cls.out), "--format", "svg", "--cpus", "2", "--", "--rng"],
            env=env, capture_output=True, text=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_it_succeeds_and_prints_the_table(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        headers, rows = report.parse_markdown_table(self.result.stdout)
        self.assertEqual(headers[:3], ["phase", "runs", "wall min"])
        names = [r[0] for r in rows]
        self.assertEqual(names[0], "process_start")
        self.assertEqual(names[-2:], ["process_exit", "reaped (outside)"])
        self.assertTrue(all(r[1] == "10" for r in rows))

    def test_percentiles_are_the_nearest_rank_ones_of_the_known_times(self):
        with open(self.out / "summary.csv") as f:
            rows = {(r["phase"], r["metric"]): r for r in csv.DictReader(f)}
        # vm_created is phase 2: wall 2*k ms for k = 2..11, i.e. 4, 6, ..., 22 ms.
        wall = rows[("vm_created", "wall")]
        self.assertEqual([float(wall[k]) for k in ("min_us", "median_us", "p90_us", "p99_us", "max_us")],
                         [4000, 13000, 20000, 22000, 22000])
        cpu = rows[("process_exit", "cpu")]   # phase 10: cpu 5*k ms
        self.assertEqual(float(cpu["min_us"]), 10000)
        self.assertEqual(float(cpu["p90_us"]), 50000)

    def test_json_has_every_run_and_the_kvmlet_command(self):
        doc = json.loads((self.out / "boot.json").read_text())
        self.assertEqual(doc["schema"], "kvmlet-bench-boot/1")
        self.assertEqual(len(doc["per_run"]), 10)
        self.assertEqual(doc["exits_median"]["total"]["pio"], 6.5)   # k = 2..11
        argv = doc["kvmlet_argv"]
        self.assertEqual(argv[1], "run")
        self.assertIn("--rng", argv)
        self.assertEqual(argv[argv.index("--cpus") + 1], "2")
        self.assertEqual(argv[-2:], ["--timeline", "FILE"])

    def test_csv_has_a_line_per_run_and_phase(self):
        with open(self.out / "runs.csv") as f:
            lines = list(csv.DictReader(f))
        self.assertEqual(len(lines), 10 * 12)
        self.assertEqual(len(list((self.out / "timelines").glob("run-*.json"))), 10)

    def test_the_plot_is_drawn_when_gnuplot_is_there(self):
        script = (self.out / "boot.gp").read_text()
        self.assertIn("candlesticks", script)
        if any(os.access(Path(d) / "gnuplot", os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            self.assertTrue((self.out / "boot.svg").stat().st_size > 1000)

    def test_its_own_timeline_option_is_refused(self):
        r = subprocess.run([sys.executable, str(ROOT / "tools/bench/boot"), "--timeline", "x.json"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--timeline is set by this tool", r.stderr)


if __name__ == "__main__":
    unittest.main()
