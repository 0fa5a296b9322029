"""Unit tests of tools/bench/density's arithmetic (creation rate, percentiles, summaries, targets),
of the smaps overhead it shares with tools/tenants, and of check_density.py: a consistent report
passes, doctored ones fail."""

import copy
import importlib.machinery
import importlib.util
import unittest
from pathlib import Path

from kvmlet_bench import fleet, report, smaps

HERE = Path(__file__).resolve().parent


def load(name, path):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


density = load("density_tool", HERE.parents[1] / "tools/bench/density")
checker = load("check_density", HERE / "check_density.py")

MiB = 1 << 20


class Sizes(unittest.TestCase):
    def test_sizes_are_positive_integers(self):
        self.assertEqual(density.parse_sizes("10,50,100"), [10, 50, 100])
        self.assertEqual(density.parse_sizes(" 4 "), [4])
        for bad in ("", "0", "10,,50", "-1", "1.5", "ten"):
            with self.assertRaises(ValueError, msg=bad):
                density.parse_sizes(bad)

    def test_memory_sizes(self):
        self.assertEqual(density.memory_bytes("64M"), 64 * MiB)
        self.assertEqual(density.memory_bytes("1g"), 1 << 30)
        self.assertEqual(density.memory_bytes("4096"), 4096)


class Creation(unittest.TestCase):
    def test_rate_is_up_over_first_spawn_to_last_output(self):
        f = density.creation_figures([10.0, 10.1, 10.2, 10.3], [10.5, 10.4, 11.0, 10.8])
        self.assertEqual(f["up"], 4)
        self.assertAlmostEqual(f["span_s"], 1.0)
        self.assertAlmostEqual(f["per_second"], 4.0)
        for got, want in zip(f["first_output_s"], [0.5, 0.3, 0.8, 0.5]):
            self.assertAlmostEqual(got, want)

    def test_instances_that_never_printed_are_not_up(self):
        f = density.creation_figures([0.0, 0.1, 0.2], [None, 0.6, None])
        self.assertEqual(f["up"], 1)
        self.assertAlmostEqual(f["span_s"], 0.6)
        self.assertEqual(density.creation_figures([0.0], [None])["per_second"], None)

    def test_percentiles_are_nearest_rank_and_ordered(self):
        p = density.percentiles([i / 100 for i in range(1, 101)])
        self.assertEqual((p["p50"], p["p90"], p["p99"], p["max"]), (0.5, 0.9, 0.99, 1.0))
        self.assertEqual(density.percentiles([])["p50"], None)


def batch(n, run=0, rate_scale=1.0, failures=(), rss=3 * MiB, cgroup_now=1.5 * MiB):
    spawned = [i * 0.001 for i in range(n)]
    first = [s + 0.1 * rate_scale for s in spawned]
    b = {"n": n, "run": run, "running_when_measured": n, "stop_s": 0.1, "cgroup_emptied": True,
         "rss_without_guest_bytes": [rss] * n, "private_without_guest_bytes": [rss // 2] * n,
         "guest_rss_bytes": [100 << 10] * n, "cgroup_current_bytes": int(cgroup_now * n),
         "cgroup_peak_bytes": int(cgroup_now * n * 1.2), "failures": list(failures)}
    b.update(density.creation_figures(spawned, first))
    return b


def good_doc(sizes=(4,), runs=1):
    rows = []
    for backend, scale, rss in (("kvmlet", 1.0, 3 * MiB), ("runc", 4.0, 13 * MiB), ("qemu", 4.0, 33 * MiB)):
        for n in sizes:
            batches = [batch(n, r, scale, rss=rss) for r in range(runs)]
            rows.append({"backend": backend, "n": n, "what": backend, "skipped": None, "error": None,
                         "batches": batches, "summary": density.summarise(n, batches), "status": "measured"})
    return {"sizes": list(sizes), "runs": runs, "guest_memory_bytes": 64 * MiB,
            "memory_method": {"unusable": None}, "rows": rows, "targets": density.verdicts(rows, list(sizes))}


def markdown(doc):
    return report.markdown_table(density.TABLE_HEADERS, [density.table_row(r) for r in doc["rows"]])


class Summaries(unittest.TestCase):
    def test_a_row_pools_its_runs(self):
        batches = [batch(4, 0), batch(4, 1, rate_scale=2.0, failures=["kvmlet 2: no output in time: x"])]
        s = density.summarise(4, batches)
        self.assertEqual((s["runs"], s["started"], s["failures"]), (2, 8, 1))
        self.assertEqual(s["first_failure"], "kvmlet 2: no output in time: x")
        self.assertAlmostEqual(s["per_second_median"], stats_median([b["per_second"] for b in batches]))
        self.assertAlmostEqual(s["first_output_s"]["max"], 0.2)
        self.assertEqual(s["cgroup_current_per_instance_bytes"], int(1.5 * MiB * 4) / 4)

    def test_targets_judge_rate_ratio_overhead_and_the_100_vm_run(self):
        doc = good_doc(sizes=(4, 100))
        self.assertTrue(doc["targets"][0]["holds"])            # kvmlet 2.5-3.9x runc's rate
        self.assertTrue(doc["targets"][1]["holds"])            # 3 MiB RSS
        self.assertTrue(doc["targets"][2]["holds"])            # 1.5 MiB cgroup
        self.assertTrue(doc["targets"][3]["holds"])         # N=100, no failure
        slow = good_doc()
        slow["rows"][0]["summary"]["per_second_median"] /= 2
        self.assertFalse(density.verdicts(slow["rows"], [4])[0]["holds"])
        self.assertIsNone(good_doc()["targets"][3]["holds"])   # N=100 not measured


def stats_median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


SMAPS = """\
55d0c0a00000-55d0c0b00000 r-xp 00000000 fd:01 123 /work/build/kvmlet
Size:               1024 kB
Rss:                 800 kB
Private_Clean:       100 kB
Private_Dirty:         0 kB
VmFlags: rd ex mr mw me
7f0000000000-7f0004000000 rw-s 00000000 00:01 58224 /memfd:kvmlet-guest-ram (deleted)
Size:              65536 kB
Rss:                  84 kB
Private_Clean:         0 kB
Private_Dirty:        84 kB
VmFlags: rd wr sh mr mw me ms
7f1000000000-7f1000100000 rw-p 00000000 00:00 0
Size:               1024 kB
Rss:                 200 kB
Private_Clean:         0 kB
Private_Dirty:       200 kB
VmFlags: rd wr mr mw me ac
"""


class Smaps(unittest.TestCase):
    def test_guest_ram_is_left_out_of_rss_and_private(self):
        o = smaps.overhead_from_smaps(SMAPS.splitlines())
        self.assertEqual(o, smaps.Overhead(1000 << 10, 300 << 10, 84 << 10))

    def test_qemus_memfd_backend_is_guest_ram_too(self):
        text = SMAPS.replace("kvmlet-guest-ram", "memory-backend-memfd")
        self.assertEqual(smaps.overhead_from_smaps(text.splitlines()).guest_rss_bytes, 84 << 10)
        self.assertEqual(smaps.overhead_from_smaps(text.splitlines(), ("kvmlet-guest-ram",)).guest_rss_bytes, 0)

    def test_this_process_has_an_overhead(self):
        import os
        o = smaps.tree_overhead_bytes(os.getpid())
        self.assertGreater(o.rss_bytes, 0)
        self.assertLessEqual(o.private_bytes, o.rss_bytes)


class FirstErrorLine(unittest.TestCase):
    def test_the_line_naming_the_error_wins(self):
        lines = ["kvmlet: host-compat pvm on", "kvmlet: error: /dev/kvm: permission denied", "bye"]
        self.assertEqual(fleet.first_error_line(lines), "kvmlet: error: /dev/kvm: permission denied")
        self.assertEqual(fleet.first_error_line(["a", "b", ""]), "b")
        self.assertEqual(fleet.first_error_line([]), "nothing on stderr")


class Checker(unittest.TestCase):
    def problems(self, doc):
        return checker.problems_with(doc, markdown(doc))

    def test_a_consistent_report_passes(self):
        self.assertEqual(self.problems(good_doc()), [])
        self.assertEqual(self.problems(good_doc(sizes=(4, 10), runs=2)), [])

    def test_a_skipped_peer_with_a_reason_passes(self):
        doc = good_doc()
        doc["rows"][1].update(status="skipped", skipped="runc not found", batches=[])
        del doc["rows"][1]["summary"]
        self.assertEqual(self.problems(doc), [])

    def doctored(self, change):
        doc = good_doc()
        change(doc)
        found = self.problems(doc)
        self.assertTrue(found, "the checker accepted a doctored report")
        return found

    def test_doctored_reports_fail(self):
        def kvmlet(doc):
            return doc["rows"][0]

        def summary(doc):
            return kvmlet(doc)["summary"]

        self.doctored(lambda d: summary(d).update(failures=1, first_failure="kvmlet 3: no output"))
        self.doctored(lambda d: kvmlet(d)["batches"][0].update(up=3))
        self.doctored(lambda d: summary(d)["first_output_s"].update(p90=summary(d)["first_output_s"]["p50"] / 2))
        self.doctored(lambda d: summary(d).update(rss_without_guest_bytes=0))
        self.doctored(lambda d: summary(d).update(rss_without_guest_bytes=65 * MiB))
        self.doctored(lambda d: summary(d).update(private_without_guest_bytes=summary(d)["rss_without_guest_bytes"] + 1))
        self.doctored(lambda d: summary(d).update(cgroup_current_per_instance_bytes=None))
        self.doctored(lambda d: kvmlet(d)["batches"][0].update(per_second=kvmlet(d)["batches"][0]["per_second"] * 2))
        self.doctored(lambda d: kvmlet(d).update(status="skipped", skipped="no /dev/kvm"))
        self.doctored(lambda d: d["rows"][1].update(status="skipped", skipped=""))
        self.doctored(lambda d: d["rows"].pop(2))
        self.doctored(lambda d: d["targets"].pop())

    def test_a_table_that_does_not_match_the_rows_fails(self):
        doc = good_doc()
        other = copy.deepcopy(doc)
        other["rows"].reverse()
        self.assertTrue(checker.problems_with(doc, markdown(other)))


if __name__ == "__main__":
    unittest.main()
