"""Unit tests of tools/kvm-host's pieces that need no emulated host: the console follower, the
run script, the route choice and the argument checks. check_kvm_host.sh boots one for real."""

import importlib.machinery
import importlib.util
import os
import subprocess
import tempfile
import unittest
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]


def load_kvm_host():
    loader = importlib.machinery.SourceFileLoader("kvm_host", str(ROOT / "tools/kvm-host"))
    spec = importlib.util.spec_from_loader("kvm_host", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


kh = load_kvm_host()


class ConsoleTest(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        self.log = self.dir / "console.log"
        self.console = kh.Console(self.dir)

    def tearDown(self):
        subprocess.run(["rm", "-rf", str(self.dir)], check=True)

    def append(self, data):
        with open(self.log, "ab") as f:
            f.write(data)

    def test_no_log_yet_is_no_beat(self):
        self.assertFalse(self.console.beats())

    def test_a_heartbeat_line_counts_once(self):
        self.append(b"[ 1.0] kernel says hi\nkvm-host-init: heartbeat 7.80\n")
        self.assertTrue(self.console.beats())
        self.assertFalse(self.console.beats())

    def test_kernel_lines_after_a_beat_are_not_beats(self):
        self.append(b"kvm-host-init: heartbeat 7.80\n")
        self.assertTrue(self.console.beats())
        self.append(b"[ 170.7] rcu: INFO: rcu_preempt detected stalls\n")
        self.assertFalse(self.console.beats())

    def test_a_line_split_across_two_reads_is_seen_whole(self):
        self.append(b"kvm-host-init: heart")
        self.assertFalse(self.console.beats())
        self.append(b"beat 12.83\n")
        self.assertTrue(self.console.beats())

    def test_the_exit_status_line_is_parsed(self):
        self.append(b"kvm-host-init: exit status 3\n")
        self.console.beats()
        self.assertEqual(self.console.status, 3)


class RunScriptTest(unittest.TestCase):
    def test_the_command_runs_with_its_arguments_directory_and_environment(self):
        with tempfile.TemporaryDirectory() as ctl, tempfile.TemporaryDirectory() as cwd:
            odd = "it's a \"quoted\" $value; `x` \\ end"
            with mock.patch.dict(os.environ, {"KVMLET_TEST_ODD": odd}):
                kh.write_run_script(Path(ctl), ["sh", "-c", 'printf "%s|%s|%s|%s|%s" "$1" "$PWD" '
                                                "\"$KVMLET_TEST_ODD\" \"$TMPDIR\" \"$KVMLET_KVM_HOST\"",
                                                "sh", odd], cwd)
            r = subprocess.run(["env", "-i", "bash", "--noprofile", "--norc", f"{ctl}/run.sh"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.split("|"),
                             [odd, os.path.realpath(cwd), odd, kh.SCRATCH_MOUNT, "native"])

    def test_a_missing_directory_ends_with_125(self):
        with tempfile.TemporaryDirectory() as ctl:
            kh.write_run_script(Path(ctl), ["true"], "/nonexistent/kvmlet-dir")
            r = subprocess.run(["bash", f"{ctl}/run.sh"], capture_output=True)
            self.assertEqual(r.returncode, 125)


class RouteTest(unittest.TestCase):
    def test_an_asked_route_wins(self):
        self.assertEqual(kh.choose_route("native")[0], "native")
        self.assertEqual(kh.choose_route("emulated")[0], "emulated")

    def test_auto_follows_whether_kvm_works(self):
        with mock.patch.object(kh, "kvm_unusable", return_value=None):
            self.assertEqual(kh.choose_route("auto")[0], "native")
        with mock.patch.object(kh, "kvm_unusable", return_value="/dev/kvm: No such file or directory"):
            route, why = kh.choose_route("auto")
            self.assertEqual(route, "emulated")
            self.assertIn("No such file", why)

    def test_real_kvm_leaves_a_kvm_pvm_host_for_the_emulated_one(self):
        with mock.patch.object(kh, "kvm_unusable", return_value=None):
            with mock.patch.object(kh, "kvm_pvm_host", return_value=True):
                self.assertEqual(kh.choose_route("auto")[0], "native")
                route, why = kh.choose_route("auto", real_kvm=True)
                self.assertEqual(route, "emulated")
                self.assertIn("kvm-pvm", why)
                self.assertEqual(kh.choose_route("native", real_kvm=True)[0], "native")
            with mock.patch.object(kh, "kvm_pvm_host", return_value=False):
                self.assertEqual(kh.choose_route("auto", real_kvm=True)[0], "native")

    def test_paths_the_emulated_host_covers(self):
        self.assertTrue(kh.covered("/run/user/0"))
        self.assertTrue(kh.covered("/dev"))
        self.assertFalse(kh.covered("/work/main/build"))
        self.assertFalse(kh.covered("/tmp/ci-clone"))
        self.assertFalse(kh.covered("/devices"))


class ArgumentsTest(unittest.TestCase):
    def test_sizes(self):
        self.assertEqual(kh.parse_size("4G"), 4 << 30)
        self.assertEqual(kh.parse_size("6144"), 6144 << 20)
        with self.assertRaises(Exception):
            kh.parse_size("lots")

    def test_a_command_is_required_and_taken_after_the_separator(self):
        with mock.patch("sys.stderr"), self.assertRaises(SystemExit):
            kh.parse_args([])
        args = kh.parse_args(["--cpus", "1", "--", "ls", "-l"])
        self.assertEqual(args.command, ["ls", "-l"])
        self.assertEqual(args.cpus, 1)

    def test_a_bad_route_is_refused(self):
        with mock.patch.dict(os.environ, {"KVMLET_KVM_HOST": "sometimes"}), \
                mock.patch("sys.stderr"), self.assertRaises(SystemExit):
            kh.parse_args(["true"])


if __name__ == "__main__":
    unittest.main()
