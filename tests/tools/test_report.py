"""Markdown tables and number formatting (tools/pylib/kvmlet_bench/report.py)."""

import unittest

from kvmlet_bench import report


class MarkdownTable(unittest.TestCase):
    def test_a_table_reads_back_as_written(self):
        text = report.markdown_table(["name", "ms"], [["a|b", "1.5"], ["c", "10.25"]], right={1})
        self.assertEqual(report.parse_markdown_table(text), (["name", "ms"], [["a|b", "1.5"], ["c", "10.25"]]))

    def test_right_aligned_columns_get_a_colon_in_the_rule(self):
        rule = report.markdown_table(["x", "y"], [["1", "2"]], right={1}).splitlines()[1]
        self.assertTrue(rule.endswith(":|"))

    def test_malformed_tables_are_errors(self):
        bad = {
            "no table": "just text",
            "no separator": "| a | b |\n| 1 | 2 |",
            "short row": "| a | b |\n|---|---|\n| 1 |",
            "unterminated row": "| a | b |\n|---|---|\n| 1 | 2",
        }
        for what, text in bad.items():
            with self.subTest(what), self.assertRaises(ValueError):
                report.parse_markdown_table(text)


class Numbers(unittest.TestCase):
    def test_milliseconds_keep_about_four_digits(self):
        self.assertEqual([report.fmt_ms(s) for s in (0.00123456, 0.0123456, 0.123456, 1.23456, None)],
                         ["1.235", "12.35", "123.5", "1235", "-"])

    def test_sizes_use_binary_units(self):
        self.assertEqual([report.fmt_size(n) for n in (512, 16384, 5 << 20, 3 << 30)],
                         ["512 B", "16.0 KiB", "5.0 MiB", "3.0 GiB"])


if __name__ == "__main__":
    unittest.main()
