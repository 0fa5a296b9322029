"""tools/compare --workload full-os's report (full_os_report.py) passes its CTest check
(check_compare_full_os.py) when every row is measured or skipped with a reason, and fails when a
row is missing, failed or skipped without a reason."""

import contextlib
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_compare_full_os as check  # noqa: E402
from kvmlet_bench import cgroup, full_os, full_os_report  # noqa: E402


def result(ready):
    return {"ready_s": ready, "cpu_s_at_ready": ready / 2, "peak_bytes_at_ready": 300 << 20,
            "current_bytes_at_ready": 290 << 20, "steady_bytes": 280 << 20, "idle_cpu_share": 0.01,
            "failed_units": "none"}


def rows():
    k = full_os.FullOsRow("kvmlet", "kvmlet", "vm")
    k.runs, k.groups = [result(60.0)], {1: [result(60.0)], 4: full_os.EMULATED_ONE_VM}
    m = full_os.FullOsRow("qemu-microvm", "microvm", "vm")
    m.skip = "qemu-system-x86_64 not found"
    q = full_os.FullOsRow("qemu-q35", "q35", "vm")
    q.runs, q.groups = [result(70.0)], {1: [result(70.0)], 4: full_os.EMULATED_ONE_VM}
    c = full_os.FullOsRow("runc", "runc", "container")
    c.runs, c.groups = [result(5.0)], {1: [result(5.0)], 4: [result(6.0)] * 4}
    return [k, m, q, c]


def report(the_rows):
    """The Markdown and JSON full_os_report writes for the_rows (1 run, 1 and 4 at once)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = SimpleNamespace(out=Path(tmp), format="svg", runs=1, instances=[1, 4], idle_seconds=10,
                               memory="512M", vm_cpus=2)
        cgroups = SimpleNamespace(peak_file="memory.peak", unusable=None, enabled=None)
        with contextlib.redirect_stdout(io.StringIO()):
            full_os_report.write(args, the_rows, "tools/compare --workload full-os", "test host", {}, cgroups)
        return (Path(tmp) / "compare.md").read_text(), json.loads((Path(tmp) / "compare.json").read_text())


class CheckCompareFullOs(unittest.TestCase):
    def test_measured_and_skipped_rows_pass(self):
        self.assertEqual(check.problems_with(*report(rows()), 1, [1, 4]), [])

    def test_a_missing_row_fails(self):
        markdown, doc = report(rows()[:3])
        self.assertTrue(any("rows are" in p for p in check.problems_with(markdown, doc, 1, [1, 4])))

    def test_a_failed_row_fails(self):
        the_rows = rows()
        the_rows[3].error = "1 of 1 instance(s) not ready"
        self.assertTrue(check.problems_with(*report(the_rows), 1, [1, 4]))

    def test_a_missing_count_of_instances_fails(self):
        the_rows = rows()
        del the_rows[3].groups[4]
        self.assertTrue(check.problems_with(*report(the_rows), 1, [1, 4]))

    def test_a_skip_without_a_reason_fails(self):
        markdown, doc = report(rows())
        markdown = markdown.replace("skipped: qemu-system-x86_64 not found", "skipped:")
        self.assertTrue(check.problems_with(markdown, doc, 1, [1, 4]))

    def test_the_container_runs_systemd_with_a_writable_cgroup_and_the_masks(self):
        with tempfile.TemporaryDirectory() as tmp:
            base, out = Path(tmp) / "base.json", Path(tmp) / "config.json"
            base.write_text(json.dumps({"process": {"env": [], "args": ["sh"]}, "root": {},
                                        "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup",
                                                    "options": ["ro"]}],
                                        "linux": {"namespaces": [{"type": "pid"}]}}))
            full_os.write_container_config(base, out, Path("/r"), Path(tmp) / "d/out/console", "/g/container")
            config = json.loads(out.read_text())
        self.assertEqual(config["process"]["args"], ["/sbin/init"])
        self.assertIn("container=oci", config["process"]["env"])
        self.assertIn({"type": "cgroup"}, config["linux"]["namespaces"])
        self.assertEqual(config["linux"]["cgroupsPath"], "/g/container")
        by_dest = {m["destination"]: m for m in config["mounts"]}
        self.assertIn("rw", by_dest["/sys/fs/cgroup"]["options"])
        self.assertEqual(by_dest["/run"]["type"], "tmpfs")
        for unit in full_os.CONTAINER_MASKED.values():
            self.assertEqual(by_dest[unit["file"]]["source"], "/dev/null")


if __name__ == "__main__":
    unittest.main()
