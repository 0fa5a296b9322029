"""Order statistics for benchmark reports.

Percentiles are by nearest rank: the p-th percentile of N samples is the smallest sample such
that at least p% of the samples are less than or equal to it, i.e. the value at rank
ceil(p/100 * N) (1-based) of the sorted samples; the 0th percentile is the minimum. It is always
one of the measured values, never an interpolated one, so with 10 runs p90 is the 9th slowest
and p99 is the maximum, which is what 10 runs can honestly say.

The median is the usual one (the mean of the two middle samples when N is even), as
statistics.median computes it; it differs from the 50th nearest-rank percentile only for even N.

`percentile_linear` (linear interpolation between closest ranks, "type 7" of Hyndman and Fan,
numpy's default) is here for comparison with other tools; the reports do not use it.
"""

import math
import statistics
from fractions import Fraction

SUMMARY_KEYS = ("min", "median", "p90", "p99", "max")


def _checked(values):
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    if any(math.isnan(v) for v in ordered):
        raise ValueError("a sample is NaN")
    return ordered


def _checked_p(p):
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not in [0, 100]")


def percentile(values, p):
    """Nearest-rank p-th percentile (0 <= p <= 100) of a non-empty sequence."""
    _checked_p(p)
    ordered = _checked(values)
    # Exact arithmetic on the decimal p, so that e.g. p=99.9 of N=1000 is rank 999, not the
    # 1000 that ceil() of a binary floating-point 999.0000000000001 would give.
    rank = max(1, math.ceil(Fraction(str(p)) * len(ordered) / 100))
    return ordered[rank - 1]


def percentile_linear(values, p):
    """Linearly interpolated p-th percentile (numpy's default method)."""
    _checked_p(p)
    ordered = _checked(values)
    h = (len(ordered) - 1) * p / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def median(values):
    return statistics.median(_checked(values))


def summary(values):
    """min, median, p90, p99, max (nearest rank) and the sample count, as a dict."""
    ordered = _checked(values)
    return {"n": len(ordered), "min": ordered[0], "median": statistics.median(ordered),
            "p90": percentile(ordered, 90), "p99": percentile(ordered, 99), "max": ordered[-1]}
