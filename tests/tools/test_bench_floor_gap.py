"""tools/bench/floor-gap end to end with a stand-in kvmlet and floor program: the interleaving,
the variants' options, the spans from the timelines, the ratios to the floor and a failing run,
in a few seconds and without /dev/kvm."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from kvmlet_bench import report

ROOT = Path(__file__).resolve().parents[2]

# As the floor (argv: GUEST MEMORY): sleeps FAKE_FLOOR_S. As kvmlet (argv: run ...): writes a
# timeline whose phases are k ms apart (k = 1 for the first variant's options, 2 with --pit off),
# then sleeps; exits FAKE_KVMLET_STATUS. Every argv is appended to FAKE_LOG.
FAKE = r'''#!/usr/bin/env python3
import json, os, sys, time
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
if sys.argv[1:2] != ["run"]:
    time.sleep(float(os.environ.get("FAKE_FLOOR_S", "0.01")))
    sys.exit(0)
k = 2 if "--pit" in sys.argv else 1
names = ["process_start", "args_parsed", "vm_created", "memory_ready", "devices_ready", "kernel_loaded",
         "first_kvm_run", "first_console_byte", "boot_timer", "shutdown_request", "process_exit"]
doc = {"schema": "kvmlet-timeline/1",
       "phases": [{"name": n, "wall_us": i * 1000 * k, "cpu_us": 0} for i, n in enumerate(names)],
       "exits": {"total": {"pio": 3}}, "stop": {"kind": "reset"}}
with open(sys.argv[sys.argv.index("--timeline") + 1], "w") as f:
    json.dump(doc, f)
time.sleep(0.01 * k)
sys.exit(int(os.environ.get("FAKE_KVMLET_STATUS", "0")))
'''


class FloorGap:
    options = []
    env = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmlet-test-floor-gap-")
        tmp = Path(cls.tmp.name)
        fake = tmp / "fake"
        fake.write_text(FAKE)
        fake.chmod(0o755)
        (tmp / "guest.elf").write_bytes(b"\x7fELF")
        cls.log, cls.out = tmp / "argv.jsonl", tmp / "out"
        env = dict(os.environ, FAKE_LOG=str(cls.log), **cls.env)
        cls.result = subprocess.run(
            [sys.executable, str(ROOT / "tools/bench/floor-gap"), "--kvmlet", str(fake), "--floor", str(fake),
             "--guest", str(tmp / "guest.elf"), "--out", str(cls.out), *cls.options],
            env=env, capture_output=True, text=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def argvs(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()]


class TwoVariants(FloorGap, unittest.TestCase):
    options = ["--runs", "3", "--warmups", "1", "--variant", "plain=", "--variant", "nopit=--pit off"]
    env = {"FAKE_FLOOR_S": "0.05"}

    def test_rounds_interleave_the_floor_and_each_variant_with_its_options(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        argvs = self.argvs()
        self.assertEqual(len(argvs), 12)   # 4 rounds of 3
        for i in range(0, 12, 3):
            floor, plain, nopit = argvs[i:i + 3]
            self.assertEqual(floor[1], "64M")
            self.assertEqual(plain[:2], ["run", "--kernel"])
            self.assertNotIn("--pit", plain)
            self.assertEqual(nopit[nopit.index("--pit") + 1], "off")
            self.assertIn("--timeline", plain)

    def test_spans_come_from_the_timelines_and_ratios_from_the_floor(self):
        doc = json.loads((self.out / "floor-gap.json").read_text())
        self.assertEqual(doc["schema"], "kvmlet-bench-floor-gap/1")
        self.assertEqual(doc["variants"], {"plain": [], "nopit": ["--pit", "off"]})
        s = doc["summary"]
        self.assertEqual(len(doc["per_run"]["floor"]), 3)
        self.assertAlmostEqual(s["plain"]["spans_median_s"]["VM created"], 0.001)
        self.assertAlmostEqual(s["nopit"]["spans_median_s"]["VM created"], 0.002)
        self.assertAlmostEqual(s["nopit"]["spans_median_s"]["guest to its reset"], 0.006)   # phases 6 to 9
        self.assertGreater(s["plain"]["spans_median_s"]["exit to reap"], 0)
        floor = s["floor"]["wall_s"]["median"]
        self.assertAlmostEqual(s["nopit"]["wall_vs_floor"], s["nopit"]["wall_s"]["median"] / floor)
        self.assertAlmostEqual(s["floor"]["wall_vs_floor"], 1.0)
        headers, rows = report.parse_markdown_table(self.result.stdout.split("by span")[1])
        self.assertEqual(headers, ["kvmlet span (median)", "plain", "nopit"])
        self.assertIn(["VM created", "1.000", "2.000"], rows)
        self.assertEqual(rows[-1][0], "exit to reap")


class KvmletFails(FloorGap, unittest.TestCase):
    options = ["--runs", "2", "--variant", "plain="]
    env = {"FAKE_KVMLET_STATUS": "3"}

    def test_a_failed_run_stops_the_benchmark_with_an_error(self):
        self.assertEqual(self.result.returncode, 1)
        self.assertIn("exited with 3, expected 0", self.result.stderr)
        self.assertFalse((self.out / "floor-gap.json").exists())


class Arguments(unittest.TestCase):
    def test_bad_variants_and_counts_are_refused(self):
        for options in (["--variant", "nameonly"], ["--variant", "floor=--pit off"],
                        ["--variant", "a=", "--variant", "a=--acpi off"], ["--runs", "0"]):
            r = subprocess.run([sys.executable, str(ROOT / "tools/bench/floor-gap"), *options],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, options)


if __name__ == "__main__":
    unittest.main()
