"""Reading kvmlet's timeline files (tools/pylib/kvmlet_bench/timeline.py)."""

import copy
import json
import unittest
from pathlib import Path

from kvmlet_bench import timeline

SAMPLE = json.loads((Path(__file__).parent / "data/timeline_boot_timer.json").read_text())


class Parse(unittest.TestCase):
    def parsed_with(self, change):
        doc = copy.deepcopy(SAMPLE)
        change(doc)
        return timeline.parse(doc)

    def test_sample_file_parses_with_every_phase_and_no_warning(self):
        parsed = timeline.load(Path(__file__).parent / "data/timeline_boot_timer.json")
        self.assertEqual(set(parsed["phases"]), set(timeline.PHASES))
        self.assertEqual(parsed["phases"]["args_parsed"], (812, 640))
        self.assertEqual(parsed["exits"]["total"]["pio"], 22)
        self.assertEqual(parsed["stop"]["kind"], "reset")
        self.assertEqual(parsed["start_resolution_us"], 10000)
        self.assertEqual(parsed["warnings"], [])

    def test_phases_not_reached_are_simply_absent(self):
        parsed = self.parsed_with(lambda d: d.update(phases=d["phases"][:3]))
        self.assertEqual(list(parsed["phases"]), ["process_start", "args_parsed", "vm_created"])

    def test_exit_counts_that_do_not_add_up_become_a_warning(self):
        parsed = self.parsed_with(lambda d: d["exits"]["total"].update(pio=23))
        self.assertEqual(len(parsed["warnings"]), 1)
        self.assertIn("pio", parsed["warnings"][0])

    def test_documents_outside_the_schema_are_errors(self):
        breakages = {
            "wrong schema": lambda d: d.update(schema="kvmlet-timeline/2"),
            "no phases": lambda d: d.update(phases=[]),
            "unknown phase": lambda d: d["phases"].append({"name": "coffee", "wall_us": 1, "cpu_us": 1}),
            "duplicate phase": lambda d: d["phases"].append(dict(d["phases"][1])),
            "negative time": lambda d: d["phases"][1].update(wall_us=-1),
            "time as a string": lambda d: d["phases"][1].update(cpu_us="5"),
            "missing cpu time": lambda d: d["phases"][1].pop("cpu_us"),
            "fractional count": lambda d: d["exits"]["total"].update(pio=1.5),
            "exits of an unknown phase": lambda d: d["exits"].update(coffee={"pio": 1}),
        }
        for what, change in breakages.items():
            with self.subTest(what), self.assertRaises(timeline.TimelineError):
                self.parsed_with(change)

    def test_a_file_that_is_not_json_is_an_error(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write("{ not json")
            f.flush()
            with self.assertRaises(timeline.TimelineError):
                timeline.load(f.name)


class MedianExits(unittest.TestCase):
    def test_medians_per_reason_and_phase_with_missing_counts_as_zero(self):
        runs = [{"exits": {"first_kvm_run": {"pio": n}, "total": {"pio": n, "mmio": 2 * n}}} for n in (1, 5, 3)]
        runs.append({"exits": {"total": {"pio": 4}}})   # no mmio, no phase: 0 there
        med = timeline.median_exits(runs)
        self.assertEqual(med["total"], {"pio": 3.5, "mmio": 4})   # mmio: 2, 10, 6 and 0
        self.assertEqual(med["phases"], {"first_kvm_run": {"pio": 2}})


if __name__ == "__main__":
    unittest.main()
