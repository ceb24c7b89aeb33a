"""The aggregate of many seeds of one config (DESIGN section 9): ``aggregate.json`` of an ensemble
directory. :func:`groklab.analysis.seeds.aggregate_seeds` computes it; the rules (which runs enter
each statistic, what censoring means for it) are documented there."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SeedAggregate", "SeedMember", "SeedQuantity"]


@dataclass
class SeedMember:
    """One member run. ``included`` False (with ``reason``) when it is left out of every statistic:
    training did not complete, or it has no analysis. ``run`` is its directory relative to the
    ensemble directory (``seed_3``); ``report`` its report page relative to the same, None when
    it has none."""

    seed: int
    run: str
    state: str | None  # status.json: completed | failed | interrupted | running | unknown
    included: bool
    reason: str | None = None
    grokked: bool | None = None  # None when not included
    last_step: int | None = None  # the last evaluated step (the budget censored events are bounded by)
    key_frequencies: list[int] = field(default_factory=list)
    report: str | None = None


@dataclass
class SeedQuantity:
    """One number over the seeds: its statistics (:func:`groklab.analysis.stats.seed_stats`) and
    its per-seed values.

    ``over`` says which members enter: ``all`` (every included member; one that never reached the
    event within its budget is censored, "later than ``censored_at[seed]``") or ``grokked`` (the
    members that grokked; the others are left out: the number describes the learned algorithm).
    ``values`` holds every included member: a number, or None with ``value_reasons[seed]`` (censored,
    or left out and why). ``n`` counts the values in the statistics (observed and censored);
    ``n_left_out`` the included members that are not. A null statistic has its reason in ``reason``.
    """

    name: str
    label: str
    unit: str
    over: str  # all | grokked
    n: int
    n_censored: int
    n_left_out: int
    median: float | None
    q1: float | None
    q3: float | None
    ci_low: float | None
    ci_high: float | None
    ci_coverage: float | None  # the exact coverage of [ci_low, ci_high] (order statistics)
    reason: str | None
    values: dict[int, float | None]
    value_reasons: dict[int, str] = field(default_factory=dict)
    censored_at: dict[int, float] = field(default_factory=dict)


@dataclass
class SeedAggregate:
    """``aggregate.json``: the task, the members, the fraction that grokked and every quantity."""

    name: str
    op: str
    p: int
    train_frac: float
    seeds: list[int]  # every member, ascending
    members: list[SeedMember]
    n_included: int
    n_grokked: int
    fraction_grokked: float | None  # n_grokked / n_included; None (with the reason) when none is included
    fraction_grokked_reason: str | None
    ci_level: float
    ci_method: str
    quantities: list[SeedQuantity]
    warnings: list[str] = field(default_factory=list)

    def quantity(self, name: str) -> SeedQuantity:
        """The quantity called ``name`` (``grokking_step``, ``n_key_frequencies``, ...); KeyError if none."""
        for q in self.quantities:
            if q.name == name:
                return q
        raise KeyError(f"no quantity {name!r}; known: {', '.join(q.name for q in self.quantities)}")
