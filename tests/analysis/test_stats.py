"""Statistics over seeds on synthetic values with known medians, quartiles and intervals."""

import math

import pytest

from groklab.analysis.stats import median_ci_ranks, paired_ratios, seed_stats


@pytest.mark.parametrize(
    ("n", "ranks", "coverage"),
    [
        (5, (1, 5), 1 - 2 / 32),  # below n = 6 no interval reaches 95%: the widest, with its coverage
        (6, (1, 6), 1 - 2 / 64),
        (9, (2, 8), 1 - 2 * 10 / 512),
        (20, (6, 15), 1 - 2 * sum(math.comb(20, i) for i in range(6)) / 2**20),
    ],
)
def test_order_statistic_interval_for_the_median(n, ranks, coverage):
    lo, hi, cov = median_ci_ranks(n)
    assert (lo, hi) == ranks and math.isclose(cov, coverage)
    if lo > 1:  # the next narrower interval falls short of 95%
        assert 1 - 2 * sum(math.comb(n, i) for i in range(lo + 1)) / 2**n < 0.95


def test_median_quartiles_and_interval_of_observed_values():
    s = seed_stats([700, 300, 500, 900, 100, 600, 800, 200, 400])  # 100..900, shuffled
    assert (s.median, s.q1, s.q3) == (500, 300, 700)
    assert (s.ci_low, s.ci_high) == (200, 800) and s.reason is None and s.n_censored == 0
    assert seed_stats([4, 1, 3, 2]).median == 2.5


def test_censored_runs_count_and_make_bounds_unknown_not_dropped():
    s = seed_stats([500, 100, 300, None, 200])  # one run never grokked
    assert s.n == 5 and s.n_censored == 1 and s.fraction_observed == 0.8
    assert s.median == 300  # dropping the censored run would have said 250
    assert s.q1 == 200 and s.q3 == 500 and s.ci_low == 100
    assert s.ci_high is None and s.reason is not None and "ci_high" in s.reason
    most = seed_stats([None, 100, None, None, 200])
    assert most.median is None and "median" in (most.reason or "")


def test_paired_ratios_place_censored_runs_at_the_ends():
    baseline = [100, 200, 300, None, 400, None]
    method = [50, 100, None, 100, None, None]
    s = paired_ratios(baseline, method)
    # ratios: 2, 2, below everything (method censored), above everything (baseline censored), below
    assert s.n == 5 and s.n_uninformative == 1 and s.n_censored == 3
    assert s.median == 2.0 and s.ci_low is None and s.ci_high is None
    exact = paired_ratios([100, 300, 800], [100, 100, 200])
    assert (exact.median, exact.ci_low, exact.ci_high) == (3.0, 1.0, 4.0)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_ratios([1, 2], [1])


def test_censoring_bounds_below_observed_values_leave_higher_ranks_unknown():
    # delays 100, 200, 600, 700 observed; one run censored "more than 300" (budget - memorization step)
    values = [100, 600, None, 200, 700]
    bounds = [None, None, 300, None, None]
    s = seed_stats(values, bounds=bounds)
    # sorted: 100, 200, then the censored run (somewhere above 300) and 600, 700 in unknown order
    assert s.n == 5 and s.n_censored == 1
    assert (s.q1, s.ci_low) == (200, 100)
    assert s.median is None and s.q3 is None and s.ci_high is None
    assert "could lie below" in (s.reason or "")
    # a bound above every observed value changes nothing
    assert seed_stats(values, bounds=[None, None, 900, None, None]) == seed_stats(values)
    with pytest.raises(ValueError, match="one entry per value"):
        seed_stats(values, bounds=[300])
