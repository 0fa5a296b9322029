"""tools/bench/transport end to end, with a stand-in kvmlet and QEMU (fake_vmm) that print the
marker after known delays and write timelines with known exit counts: the console watching, the
stopping, the statistics and the report, in a few seconds and without /dev/kvm."""

import csv
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from kvmlet_bench import qemu_linux, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FAKE = HERE / "fake_vmm"
MARKER = "Run /init as init process"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


class Transport:
    """Runs the tool in a fresh directory with the fakes; subclasses pick the options."""
    options = []
    env = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="kvmlet-test-transport-")
        tmp = Path(cls.tmp.name)
        cls.out, cls.state = tmp / "out", tmp / "state"
        cls.state.mkdir()
        kernel, initrd = tmp / "vmlinux", tmp / "initrd.cpio"
        kernel.write_bytes(b"\x7fELF")
        initrd.write_bytes(b"070701")
        env = dict(os.environ, FAKE_VMM_DIR=str(cls.state), **cls.env)
        cls.result = subprocess.run(
            [sys.executable, str(ROOT / "tools/bench/transport"), "--kvmlet", str(FAKE), "--qemu", str(FAKE),
             "--kernel", str(kernel), "--initrd", str(initrd), "--out", str(cls.out), "--cpus", "2",
             "--memory", "192M", *cls.options],
            env=env, capture_output=True, text=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def argvs(self):
        lines = (self.state / "argv.jsonl").read_text().splitlines()
        return [json.loads(ln) for ln in lines]

    def pid(self, peer):
        return int((self.state / f"pid-{peer}").read_text())


class ThreePeersThreeRuns(Transport, unittest.TestCase):
    options = ["--runs", "3", "--host-compat", "pvm", "--grace", "5"]

    def test_it_succeeds_and_prints_a_row_per_peer(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        headers, rows = report.parse_markdown_table(self.result.stdout)
        self.assertEqual(headers[:3], ["peer", "runs", "wall min (s)"])
        self.assertEqual([r[0] for r in rows], ["kvmlet-pci", "kvmlet-mmio", "qemu-microvm"])
        self.assertEqual([r[1] for r in rows], ["3", "3", "3"])
        self.assertEqual(rows[2][-1], "not counted")

    def test_runs_interleave_and_every_run_is_stopped_by_sigterm(self):
        doc = json.loads((self.out / "transport.json").read_text())
        self.assertEqual(doc["schema"], "kvmlet-bench-transport/1")
        self.assertEqual(doc["order"], ["kvmlet-pci", "kvmlet-mmio", "qemu-microvm"] * 3)
        self.assertEqual([a["peer"] for a in self.argvs()], ["pci", "mmio", "qemu"] * 3)
        for peer in doc["peers"].values():
            self.assertEqual(len(peer["per_run"]), 3)
            for run in peer["per_run"]:
                self.assertEqual((run["stop"], run["status"]), ("SIGTERM", 0))
        for peer in ("pci", "mmio", "qemu"):
            self.assertFalse(alive(self.pid(peer)))

    def test_wall_times_follow_the_delays_and_ratios_are_those_of_the_medians(self):
        doc = json.loads((self.out / "transport.json").read_text())
        median = {n: p["summary"]["wall_s"]["median"] for n, p in doc["peers"].items()}
        self.assertGreaterEqual(median["kvmlet-pci"], 0.45)
        self.assertGreaterEqual(median["qemu-microvm"], 0.15)
        self.assertGreater(median["kvmlet-pci"], median["qemu-microvm"])
        r = doc["ratios_of_median_wall"]
        self.assertAlmostEqual(r["kvmlet-pci/qemu-microvm"], median["kvmlet-pci"] / median["qemu-microvm"])
        self.assertAlmostEqual(r["kvmlet-mmio/qemu-microvm"], median["kvmlet-mmio"] / median["qemu-microvm"])
        self.assertAlmostEqual(r["kvmlet-pci/kvmlet-mmio"], median["kvmlet-pci"] / median["kvmlet-mmio"])
        self.assertIn(f"kvmlet-pci/qemu-microvm {r['kvmlet-pci/qemu-microvm']:.2f}x", self.result.stdout)

    def test_exits_are_the_medians_per_reason_of_the_timelines(self):
        doc = json.loads((self.out / "transport.json").read_text())
        pci = doc["peers"]["kvmlet-pci"]["summary"]
        mmio = doc["peers"]["kvmlet-mmio"]["summary"]
        # k = 1..3: pio 11..13, mmio 20k (pci) or 5k (mmio), signal 1.
        self.assertEqual(pci["exits_median"]["total"], {"pio": 12, "mmio": 40, "hlt": 0, "signal": 1})
        self.assertEqual(mmio["exits_median"]["total"], {"pio": 12, "mmio": 10, "hlt": 0, "signal": 1})
        self.assertEqual(pci["exits_total_median"], 53)
        self.assertIsNone(doc["peers"]["qemu-microvm"]["summary"].get("exits_median"))
        headers, rows = report.parse_markdown_table(self.result.stdout.split("by reason")[1])
        self.assertEqual(headers, ["exit reason", "kvmlet-pci", "kvmlet-mmio"])
        self.assertIn(["mmio", "40", "10"], rows)
        self.assertEqual(rows[-1][1:], ["53", "23"])

    def test_every_peer_boots_the_same_kernel_with_the_same_devices(self):
        by_peer = {}
        for a in self.argvs():
            by_peer.setdefault(a["peer"], a["argv"][1:])
        for t in ("pci", "mmio"):
            argv = by_peer[t]
            self.assertEqual(argv[argv.index("--transport") + 1], t)
            self.assertEqual(argv[argv.index("--memory") + 1], "192M")
            self.assertEqual(argv[argv.index("--cpus") + 1], "2")
            self.assertEqual(argv[argv.index("--host-compat") + 1], "pvm")
            self.assertIn("--rng", argv)
            self.assertIn("--timeline", argv)
            self.assertEqual(argv[argv.index("--console") + 1], "serial")
            self.assertEqual(argv[argv.index("--cmdline") + 1], "console=ttyS0 reboot=k panic=-1")
            disk = argv[argv.index("--disk") + 1]
        q = by_peer["qemu"]
        self.assertEqual(q[q.index("-M") + 1], "microvm,x-option-roms=off,rtc=off,acpi=on")
        self.assertEqual(q[q.index("-cpu") + 1], qemu_linux.PVM_CPU)
        self.assertEqual((q[q.index("-m") + 1], q[q.index("-smp") + 1]), ("192M", "2"))
        self.assertEqual(q[q.index("-kernel") + 1], by_peer["pci"][by_peer["pci"].index("--kernel") + 1])
        self.assertEqual(q[q.index("-initrd") + 1], by_peer["pci"][by_peer["pci"].index("--initrd") + 1])
        self.assertTrue(q[q.index("-append") + 1].endswith("kvmlet.pvm_quirks=full"))
        self.assertEqual(q[q.index("-serial") + 1], "stdio")
        self.assertIn(f"id=disk0,file={disk},format=raw,if=none", q)
        self.assertIn("virtio-blk-device,drive=disk0", q)
        self.assertIn("virtio-rng-device", q)

    def test_files_per_run_and_the_commands_in_the_report(self):
        self.assertEqual(len(list((self.out / "timelines").glob("kvmlet-*.json"))), 6)
        log = (self.out / "console" / "qemu-microvm-02.log").read_text()
        self.assertIn(MARKER, log)
        self.assertIn("terminating on signal 15", log)   # output after SIGTERM is kept too
        with open(self.out / "runs.csv") as f:
            lines = list(csv.DictReader(f))
        self.assertEqual(len(lines), 9)
        self.assertEqual(lines[0]["exits_mmio"], "20")
        md = (self.out / "transport.md").read_text()
        self.assertIn("--transport mmio", md)
        self.assertIn("virtio-blk-device", md)
        self.assertIn("whole run", md)


class ConsoleOnVirtio(Transport, unittest.TestCase):
    options = ["--runs", "1", "--console", "virtio", "--host-compat", "none"]

    def test_every_peer_has_its_console_on_virtio_with_hvc0(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        argvs = self.argvs()
        self.assertEqual([a["peer"] for a in argvs], ["pci", "mmio", "qemu"])
        for a in argvs[:2]:
            argv = a["argv"]
            self.assertEqual(argv[argv.index("--console") + 1], "virtio")
            self.assertEqual(argv[argv.index("--cmdline") + 1], "console=hvc0 reboot=k panic=-1")
        q = argvs[2]["argv"]
        self.assertEqual(q[q.index("-append") + 1], "console=hvc0 reboot=k panic=-1")
        self.assertNotIn("-serial", q)
        self.assertEqual(q[q.index("-chardev") + 1], "stdio,id=console0")
        self.assertIn("virtio-serial-device", q)
        self.assertIn("virtconsole,chardev=console0", q)
        doc = json.loads((self.out / "transport.json").read_text())
        self.assertEqual((doc["console"], doc["cmdline"]), ("virtio", "console=hvc0 reboot=k panic=-1"))
        self.assertIn("virtio-console (`--console virtio`)", self.result.stdout)

    def test_the_serial_default_keeps_the_8250(self):
        argv = qemu_linux.argv("qemu", "vmlinux", "console=ttyS0", 1, "64M", pvm=False)
        self.assertEqual(argv[argv.index("-serial") + 1], "stdio")
        self.assertNotIn("virtio-serial-device", argv)
        with self.assertRaises(ValueError):
            qemu_linux.argv("qemu", "vmlinux", "console=ttyS0", 1, "64M", console="hvc")


class QemuMissing(Transport, unittest.TestCase):
    options = ["--runs", "1", "--qemu", "/nonexistent/qemu-system-x86_64", "--host-compat", "none"]

    def test_qemu_is_skipped_with_the_reason_and_the_rest_is_measured(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        doc = json.loads((self.out / "transport.json").read_text())
        self.assertIn("not found", doc["peers"]["qemu-microvm"]["skipped"])
        self.assertIsNone(doc["ratios_of_median_wall"]["kvmlet-pci/qemu-microvm"])
        self.assertIsNotNone(doc["ratios_of_median_wall"]["kvmlet-pci/kvmlet-mmio"])
        self.assertIn("skipped: /nonexistent/qemu-system-x86_64 not found", self.result.stdout)


class NeverPrintsTheLine(Transport, unittest.TestCase):
    options = ["--runs", "2", "--peers", "pci", "--timeout", "1", "--grace", "2"]
    env = {"FAKE_KVMLET_MODE": "never"}

    def test_the_run_fails_clearly_and_the_vmm_is_stopped(self):
        self.assertEqual(self.result.returncode, 1)
        self.assertIn(f"did not print '{MARKER}' within 1 s (stopped: SIGTERM)", self.result.stderr)
        self.assertIn("virtio_blk virtio0", self.result.stderr)    # the console's last lines
        self.assertEqual(len(self.argvs()), 1)
        self.assertFalse(alive(self.pid("pci")))


class ExitsBeforeTheLine(Transport, unittest.TestCase):
    options = ["--runs", "1", "--peers", "mmio,qemu"]
    env = {"FAKE_KVMLET_MODE": "exit"}

    def test_the_run_fails_with_the_status_and_stderr(self):
        self.assertEqual(self.result.returncode, 1)
        self.assertIn("exited with status 3 before its console printed", self.result.stderr)
        self.assertIn("fake crash: guest triple fault", self.result.stderr)


class IgnoresSigterm(Transport, unittest.TestCase):
    options = ["--runs", "1", "--peers", "qemu", "--grace", "0.5"]
    env = {"FAKE_QEMU_MODE": "stubborn"}

    def test_it_is_killed_after_the_grace_period_and_the_run_counts(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)
        doc = json.loads((self.out / "transport.json").read_text())
        run = doc["peers"]["qemu-microvm"]["per_run"][0]
        self.assertEqual((run["stop"], run["status"]), ("SIGKILL (0.5 s after SIGTERM)", -9))
        self.assertFalse(alive(self.pid("qemu")))


class Arguments(unittest.TestCase):
    def run_tool(self, *options):
        return subprocess.run([sys.executable, str(ROOT / "tools/bench/transport"), "--kernel", "/nonexistent",
                               *options], capture_output=True, text=True)

    def test_bad_options_are_refused(self):
        for options in (["--peers", "pci,xen"], ["--peers", "pci,pci"], ["--runs", "0"], ["--memory", "1.5G"]):
            r = self.run_tool(*options)
            self.assertEqual(r.returncode, 2, options)

    def test_a_missing_kernel_is_named(self):
        r = self.run_tool("--peers", "qemu")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent is missing", r.stderr)


if __name__ == "__main__":
    unittest.main()
