"""Statistics over seeds with censoring: median, IQR and a confidence interval for the median.

A value is a number, or ``None`` for a run in which the event never happened within its budget
(right-censored: "more than the budget"). Censored values are never dropped: they sort above every
observed value, so a quantile that lands on one is unknown and reported as null with the reason.

**Confidence interval for the median** (distribution-free, order statistics): with n values
sorted, [X_(j), X_(n+1-j)] covers the median with probability 1 - 2 P(B <= j - 1), B ~ Binomial(n, 1/2).
We take the largest j whose coverage is >= 0.95. For n <= 5 no j reaches 0.95, so the widest
interval [X_(1), X_(n)] is given with its actual coverage (n = 5: 0.9375), which is recorded beside
it: the interval never claims more than it has.

**Censoring bounds.** A censored value is "more than its bound" (the step budget of its run). When
every bound is at least every observed value (one budget for all runs), censored values simply sort
last. When a bound is smaller than some observed value (a delay censored at budget - memorization
step), a censored run might lie below those observed values: an order statistic is then known only
while it is at most the smallest bound, and is null above it (``seed_stats(values, bounds=...)``).

**Quartiles**: the order statistics at ranks ceil(n/4) and ceil(3n/4) (type-1 quantiles: always an
observed value, so censoring is handled by position, not by interpolation).

**Paired ratios** (an acceleration factor of a method against a baseline on the same seeds and
splits): per seed r = baseline / method. A censored method gives r < baseline / budget (placed below
every observed ratio), a censored baseline r > budget / method (placed above); where both are
censored the seed says nothing about the ratio and is counted apart (``n_uninformative``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CI_LEVEL", "SeedStats", "median_ci_ranks", "paired_ratios", "seed_stats"]

CI_LEVEL = 0.95


@dataclass(frozen=True)
class SeedStats:
    """Median, quartiles and the median's CI of per-seed values (None = censored)."""

    n: int
    n_censored: int
    median: float | None
    q1: float | None
    q3: float | None
    ci_low: float | None
    ci_high: float | None
    ci_coverage: float | None  # the exact coverage of [ci_low, ci_high]
    reason: str | None = None  # why a null field is null
    n_uninformative: int = 0  # paired ratios only: seeds where both runs were censored

    @property
    def fraction_observed(self) -> float | None:
        return None if self.n == 0 else (self.n - self.n_censored) / self.n


def _binom_cdf(k: int, n: int) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def median_ci_ranks(n: int, level: float = CI_LEVEL) -> tuple[int, int, float]:
    """1-based ranks (lo, hi) of the order-statistic CI for the median, and its coverage."""
    if n < 1:
        raise ValueError("need at least one value")
    best = (1, n, 1 - 2 * _binom_cdf(0, n))
    for j in range(1, n // 2 + 1):
        coverage = 1 - 2 * _binom_cdf(j - 1, n)
        if coverage >= level:
            best = (j, n + 1 - j, coverage)
    return best


def _ordered(values: Sequence[float | None]) -> list[float]:
    """Observed values ascending, censored ones (+inf) last."""
    return sorted(math.inf if v is None else float(v) for v in values)


def _at(xs: list[float], rank: int) -> float | None:
    v = xs[rank - 1]
    return None if math.isinf(v) else v


def _median(xs: list[float]) -> float | None:
    n = len(xs)
    lo, hi = xs[(n - 1) // 2], xs[n // 2]
    if math.isinf(lo) or math.isinf(hi):
        return None
    return (lo + hi) / 2


def seed_stats(
    values: Sequence[float | None], level: float = CI_LEVEL, bounds: Sequence[float | None] | None = None
) -> SeedStats:
    """:class:`SeedStats` of ``values`` (None = censored: above every observed value).

    ``bounds`` (same length as ``values``): the bound each censored value is known to exceed; an
    observed value above the smallest bound cannot be placed among the censored ones, so an order
    statistic that lands on it is null too (see the module docstring)."""
    why = "censored (never happened within the budget)"
    n_censored = sum(v is None for v in values)
    if bounds is None or n_censored == 0:
        return _stats(_ordered(values), n_censored, level, why)
    if len(bounds) != len(values):
        raise ValueError(f"bounds need one entry per value, got {len(bounds)} for {len(values)}")
    known = [float(b) for v, b in zip(values, bounds, strict=True) if v is None and b is not None]
    if len(known) < n_censored:
        raise ValueError("every censored value needs its bound")
    lowest = min(known)
    placed = [None if v is None or float(v) > lowest else v for v in values]
    if any(p is None and v is not None for p, v in zip(placed, values, strict=True)):
        why += f"; a run censored at {lowest:g} could lie below the larger observed values"
    return _stats(_ordered(placed), n_censored, level, why)


def _stats(xs: list[float], n_censored: int, level: float, why: str, n_uninformative: int = 0) -> SeedStats:
    n = len(xs)
    if n == 0:
        return SeedStats(0, 0, None, None, None, None, None, None, "no values", n_uninformative)
    lo, hi, coverage = median_ci_ranks(n, level)
    fields = {
        "median": _median(xs),
        "q1": _at(xs, math.ceil(n / 4)),
        "q3": _at(xs, math.ceil(3 * n / 4)),
        "ci_low": _at(xs, lo),
        "ci_high": _at(xs, hi),
    }
    nulls = [k for k, v in fields.items() if v is None]
    reason = f"{', '.join(nulls)}: {why}" if nulls else None
    return SeedStats(n, n_censored, ci_coverage=coverage, reason=reason, n_uninformative=n_uninformative, **fields)


def paired_ratios(
    baseline: Sequence[float | None], method: Sequence[float | None], level: float = CI_LEVEL
) -> SeedStats:
    """Stats of the per-seed ratio baseline / method (an acceleration factor when the values are
    steps to an event); ``None`` = censored. Seeds pair by position."""
    if len(baseline) != len(method):
        raise ValueError(f"paired values need equal lengths, got {len(baseline)} and {len(method)}")
    ratios: list[float] = []
    uninformative = 0
    for b, m in zip(baseline, method, strict=True):
        if b is None and m is None:
            uninformative += 1
        elif m is None:
            ratios.append(-math.inf)  # the method never got there: below every observed ratio
        elif b is None:
            ratios.append(math.inf)  # the baseline never got there: above every observed ratio
        else:
            ratios.append(float(b) / float(m))
    ratios.sort()
    n_censored = sum(math.isinf(r) for r in ratios)
    return _stats(ratios, n_censored, level, "bounded only by a censored run", uninformative)
