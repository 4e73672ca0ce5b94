"""The benches judge their targets on a distribution-free interval of the median (bench/bench_window.py)."""

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_window import median_ci, verdict_at_most  # noqa: E402


@pytest.mark.parametrize("n", [6, 9, 15, 61, 201, 202])
def test_the_median_interval_uses_the_widest_order_statistics_binomial_coverage_allows(n):
    binom = pytest.importorskip("scipy.stats").binom
    xs = list(range(n))  # sorted, so a value is its own 0-based rank
    low, high = median_ci([float(x) for x in random.Random(n).sample(xs, n)])
    j = int(low) + 1  # 1-based rank of the lower end
    assert high == n - j  # symmetric: x_(n+1-j) in 1-based ranks
    coverage = 1 - 2 * binom.cdf(j - 1, n, 0.5)
    assert coverage >= 0.95
    assert 1 - 2 * binom.cdf(j, n, 0.5) < 0.95  # one rank narrower would not cover


def test_too_few_values_give_the_whole_range_and_an_inconclusive_verdict():
    assert median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)
    assert verdict_at_most([0.5, 1.5, 0.7], 1.0) == "inconclusive"


def test_a_verdict_is_met_or_not_met_only_when_the_interval_clears_the_target():
    rng = random.Random(0)
    around = [1.0 + rng.gauss(0, 0.5) for _ in range(201)]
    assert verdict_at_most(around, 1.0) == "inconclusive"
    assert verdict_at_most([v - 1.0 for v in around], 1.0) == "met"
    assert verdict_at_most([v + 1.0 for v in around], 1.0) == "NOT met"
