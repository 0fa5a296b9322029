"""The CTest check of tools/compare's report (check_compare.py) fails on what it must."""

import copy
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_compare  # noqa: E402

GOOD_TABLE = """\
| workload   | status            | wall median ms | wall p90 ms | CPU median ms | peak memory MiB (cgroup) | largest RSS MiB |
|------------|-------------------|---------------:|------------:|--------------:|-------------------------:|----------------:|
| kvmlet     | measured (2 runs) |          15.16 |       38.69 |         4.924 |                     1.33 |            4.05 |
| floor      | measured (2 runs) |          4.310 |       5.020 |         1.210 |                     0.41 |            0.62 |
| qemu       | skipped: qemu-system-x86_64 not found |  - | - | - | - | - |
| runc       | measured (2 runs) |          63.23 |       65.65 |         34.93 |                        - |            9.64 |
| namespaces | skipped: needs root |  - | - | - | - | - |
"""
GOOD_JSON = {"rows": {
    "kvmlet": {"status": "measured (2 runs)", "samples": [{}, {}]},
    "floor": {"status": "measured (2 runs)", "samples": [{}, {}]},
    "qemu": {"status": "skipped: qemu-system-x86_64 not found", "samples": []},
    "runc": {"status": "measured (2 runs)", "samples": [{}, {}]},
    "namespaces": {"status": "skipped: needs root", "samples": []},
}}


class CheckCompare(unittest.TestCase):
    def test_a_report_with_measured_and_skipped_rows_passes(self):
        self.assertEqual(check_compare.problems_with(GOOD_TABLE, GOOD_JSON, 2), [])

    def test_a_missing_row_fails(self):
        table = "\n".join(ln for ln in GOOD_TABLE.splitlines() if not ln.startswith("| runc"))
        self.assertTrue(check_compare.problems_with(table, GOOD_JSON, 2))

    def test_a_report_without_the_floor_row_fails(self):
        table = "\n".join(ln for ln in GOOD_TABLE.splitlines() if not ln.startswith("| floor"))
        doc = copy.deepcopy(GOOD_JSON)
        del doc["rows"]["floor"]
        self.assertTrue(check_compare.problems_with(table, doc, 2))

    def test_a_floor_row_skipped_with_a_reason_passes(self):
        reason = "skipped: /dev/kvm: No such file or directory"
        table = GOOD_TABLE.replace("| floor      | measured (2 runs) |          4.310 |       5.020 |         "
                                   "1.210 |                     0.41 |            0.62 |",
                                   f"| floor      | {reason} | - | - | - | - | - |")
        doc = copy.deepcopy(GOOD_JSON)
        doc["rows"]["floor"] = {"status": reason, "samples": []}
        self.assertEqual(check_compare.problems_with(table, doc, 2), [])

    def test_a_malformed_table_fails(self):
        for what, table in {
            "no separator": "\n".join(ln for i, ln in enumerate(GOOD_TABLE.splitlines()) if i != 1),
            "a row cut short": GOOD_TABLE.replace("|            4.05 |", ""),
            "no table at all": "tools/compare: error",
        }.items():
            with self.subTest(what):
                self.assertTrue(check_compare.problems_with(table, GOOD_JSON, 2))

    def test_a_skip_without_reason_fails(self):
        table = GOOD_TABLE.replace("skipped: needs root", "skipped:")
        doc = copy.deepcopy(GOOD_JSON)
        doc["rows"]["namespaces"]["status"] = "skipped:"
        self.assertTrue(check_compare.problems_with(table, doc, 2))

    def test_a_measured_row_without_numbers_fails(self):
        table = GOOD_TABLE.replace("|          15.16 |", "|              - |")
        self.assertTrue(check_compare.problems_with(table, GOOD_JSON, 2))

    def test_a_failed_row_fails(self):
        table = GOOD_TABLE.replace("measured (2 runs) |          63.23", "failed: exited with 1 |  63.23")
        self.assertTrue(check_compare.problems_with(table, GOOD_JSON, 2))

    def test_json_that_disagrees_with_the_table_fails(self):
        doc = copy.deepcopy(GOOD_JSON)
        doc["rows"]["kvmlet"]["samples"] = [{}]
        self.assertTrue(check_compare.problems_with(GOOD_TABLE, doc, 2))
        del doc["rows"]["qemu"]
        self.assertTrue(check_compare.problems_with(GOOD_TABLE, doc, 2))


if __name__ == "__main__":
    unittest.main()
