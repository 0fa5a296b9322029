"""Percentile maths of tools/pylib/kvmlet_bench/stats.py against known data."""

import unittest

from kvmlet_bench import stats

# Worked examples of the nearest-rank method (Wikipedia, "Percentile", nearest-rank method).
FIVE = [15, 20, 35, 40, 50]
TEN = [3, 6, 7, 8, 8, 10, 13, 15, 16, 20]


class NearestRank(unittest.TestCase):
    def test_worked_example_of_five_values(self):
        self.assertEqual([stats.percentile(FIVE, p) for p in (5, 30, 40, 50, 100)], [15, 20, 20, 35, 50])

    def test_worked_example_of_ten_values(self):
        self.assertEqual([stats.percentile(TEN, p) for p in (25, 50, 75, 100)], [7, 8, 15, 20])

    def test_zeroth_percentile_is_the_minimum(self):
        self.assertEqual(stats.percentile(TEN, 0), 3)

    def test_p90_of_ten_runs_is_the_ninth_and_p99_the_maximum(self):
        runs = list(range(10, 0, -1))   # unsorted input
        self.assertEqual(stats.percentile(runs, 90), 9)
        self.assertEqual(stats.percentile(runs, 99), 10)

    def test_rank_is_exact_for_decimal_percentiles(self):
        # 99.9% of 1000 is rank 999 exactly; binary floating point would round it up to 1000.
        self.assertEqual(stats.percentile(range(1, 1001), 99.9), 999)
        self.assertEqual(stats.percentile(range(1, 101), 99), 99)

    def test_a_single_sample_is_every_percentile(self):
        self.assertEqual({stats.percentile([4.2], p) for p in (0, 1, 50, 99, 100)}, {4.2})

    def test_result_is_always_a_sample(self):
        values = [0.3, 1.7, 2.9, 10.1]
        for p in range(101):
            self.assertIn(stats.percentile(values, p), values)

    def test_empty_input_nan_and_out_of_range_p_are_errors(self):
        with self.assertRaises(ValueError):
            stats.percentile([], 50)
        with self.assertRaises(ValueError):
            stats.percentile([1, float("nan")], 50)
        for p in (-1, 100.5):
            with self.assertRaises(ValueError):
                stats.percentile([1, 2], p)


class LinearInterpolation(unittest.TestCase):
    def test_matches_numpy_default_on_known_data(self):
        # numpy.percentile(FIVE, [40, 90]) == [29.0, 46.0]; numpy.percentile(TEN, 25) == 7.25
        self.assertAlmostEqual(stats.percentile_linear(FIVE, 40), 29.0)
        self.assertAlmostEqual(stats.percentile_linear(FIVE, 90), 46.0)
        self.assertAlmostEqual(stats.percentile_linear(TEN, 25), 7.25)
        self.assertEqual(stats.percentile_linear(TEN, 0), 3)
        self.assertEqual(stats.percentile_linear(TEN, 100), 20)


class Summary(unittest.TestCase):
    def test_summary_of_ten_values(self):
        self.assertEqual(stats.summary(TEN), {"n": 10, "min": 3, "median": 9.0, "p90": 16, "p99": 20, "max": 20})

    def test_median_of_an_odd_count_is_the_middle_value(self):
        self.assertEqual(stats.summary(FIVE)["median"], 35)
        self.assertEqual(stats.median([3, 1, 2]), 2)


if __name__ == "__main__":
    unittest.main()
