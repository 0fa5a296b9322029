"""Unit tests of tools/tenants' histogram arithmetic (the buckets of tests/guests/tenant.c and
tools/bench/tenant_workload.c) and its percentiles."""

import importlib.machinery
import importlib.util
import unittest
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools/tenants"
_loader = importlib.machinery.SourceFileLoader("tenants_tool", str(TOOL))
_spec = importlib.util.spec_from_loader("tenants_tool", _loader)
tenants = importlib.util.module_from_spec(_spec)
_loader.exec_module(tenants)


def bucket_of(value):
    """tenant.c's bucket_of, as written there."""
    if value < 8:
        return value
    m = value.bit_length() - 1
    return 8 * (m - 2) + ((value >> (m - 3)) & 7)


class Buckets(unittest.TestCase):
    def test_every_value_lies_in_its_buckets_bounds(self):
        values = list(range(0, 5000)) + [2**k + d for k in range(13, 63) for d in (-1, 0, 1, 2**(k - 4))]
        for v in values:
            b = bucket_of(v)
            self.assertLessEqual(tenants.bucket_low(b), v, v)
            self.assertLess(v, tenants.bucket_low(b + 1), v)

    def test_buckets_are_at_most_an_eighth_of_their_octave_wide(self):
        for b in range(16, 8 * 60):
            low, high = tenants.bucket_low(b), tenants.bucket_low(b + 1)
            self.assertLessEqual((high - low) / low, 0.125)

    def test_the_midpoint_is_within_the_bucket(self):
        for b in range(8, 400):
            self.assertTrue(tenants.bucket_low(b) <= tenants.bucket_mid(b) < tenants.bucket_low(b + 1))


class Percentiles(unittest.TestCase):
    def test_percentiles_of_a_known_histogram(self):
        hist = {bucket_of(1000): 90, bucket_of(100000): 10}
        self.assertEqual(tenants.percentile_of(hist, 50), tenants.bucket_mid(bucket_of(1000)))
        self.assertEqual(tenants.percentile_of(hist, 90), tenants.bucket_mid(bucket_of(1000)))
        self.assertEqual(tenants.percentile_of(hist, 99), tenants.bucket_mid(bucket_of(100000)))
        self.assertIsNone(tenants.percentile_of({}, 50))

    def test_a_histogram_line_is_parsed_and_checked(self):
        self.assertEqual(tenants.parse_hist("tenant: hist n=5 131:2 140:3"), {131: 2, 140: 3})
        with self.assertRaises(tenants.Failed):
            tenants.parse_hist("tenant: hist n=6 131:2 140:3")


if __name__ == "__main__":
    unittest.main()
