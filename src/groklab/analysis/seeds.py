"""Statistics over the seeds of one config (DESIGN section 9): records in, a :class:`SeedAggregate` out.

Every quantity is summarised by :func:`groklab.analysis.stats.seed_stats`: median, quartiles and
the order-statistic 95% CI of the median with its exact coverage. No resampling is involved, so
the aggregate is a deterministic function of the members' summaries.

**Who enters each statistic.** Members whose training did not complete or that have no analysis are
left out of every statistic and listed with their state (``SeedAggregate.members``). Of the
included members:

- *Events* (memorization step, grokking step, delay) enter for every member. One that never reached
  the event is **censored**: "later than its budget" (its last evaluated step; for the delay, the
  last step minus its memorization step, or 0 for a run that never memorized). Censored values
  are counted, never dropped, and sort above every observed value; where a censoring bound lies
  below some observed values (delays), a statistic that could fall on a censored run is null.
- *Phase boundaries* (memorization_end, circuit_formation_end, cleanup_end) enter for every member.
  In a run that did not grok, a boundary that was not placed is censored at its last step (the
  phase had not ended). In a run that grokked, a boundary that was not placed is **left out** with
  the phase rule's reason (e.g. cleanup not ended by the last progress record, or too few saved
  steps): the summary does not say whether the run stopped before the boundary or the rule could
  not place it, so neither "later" nor a number is claimed. ``n_left_out`` counts these.
- *Measures of the learned algorithm* (number of key frequencies, accuracy drop when the key
  frequencies are removed and its random-frequency control) are taken **over the members that
  grokked**: a memorizing model has no key frequencies by design (honest nulls), and counting its
  zero would mix two populations. A member that did not grok is left out, its value shown in the
  reason; a grokked member whose value is null (no key frequencies) is left out with that reason.
- *Final metrics* (final test accuracy and loss) enter for every included member.

The fraction that grokked is ``n_grokked / n_included``.

:func:`median_curve` gives the median (and quartiles) of one metric across seeds at each
evaluation step, over the seeds that have a record at that step (a seed that stopped early, e.g.
by ``train.stop_after_grok``, no longer counts). :func:`seed_group_key` says which runs form a
seed group: runs whose configs differ only in ``seed``, ``task.split_seed`` (and ``name``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from groklab.analysis.stats import CI_LEVEL, SeedStats, seed_stats
from groklab.conventions import event_rule
from groklab.records import SeedAggregate, SeedMember, SeedQuantity, Summary

__all__ = [
    "CI_METHOD",
    "HEADLINE",
    "MedianCurve",
    "aggregate_seeds",
    "median_curve",
    "seed_group_key",
]

CI_METHOD = (
    "order-statistic interval for the median: [X_(j), X_(n+1-j)] with the largest j whose coverage "
    "1 - 2 P(Binomial(n, 1/2) <= j - 1) is at least the level; with 5 or fewer values no j reaches 95% "
    "and the widest interval [X_(1), X_(n)] is given with its exact coverage"
)
HEADLINE = ("memorization_step", "grokking_step", "delay", "n_key_frequencies", "key_frequency_acc_drop")
BOUNDARIES = ("memorization_end", "circuit_formation_end", "cleanup_end")

# A member's value of one quantity: (value, censoring bound or None, reason when the value is None).
Value = tuple[float | None, float | None, str | None]


@dataclass(frozen=True)
class _Quantity:
    name: str
    label: str
    unit: str
    over: str  # all | grokked
    read: Callable[[Summary], Value]


def _event(name: str) -> Callable[[Summary], Value]:
    def read(s: Summary) -> Value:
        ev = s.events
        value = getattr(ev, name)
        if value is not None:
            return float(value), None, None
        if ev.last_step is None:
            return None, None, f"left out: {ev.reasons.get(name, 'no evaluation records')}"
        bound = float(ev.last_step)
        if name == "delay":
            bound = float(ev.last_step - ev.memorization_step) if ev.memorization_step is not None else 0.0
        why = ev.reasons.get(name) or ev.reasons.get("grokking_step") or "did not happen"
        return None, bound, f"censored (> {bound:g}): {why}"

    return read


def _boundary(name: str) -> Callable[[Summary], Value]:
    def read(s: Summary) -> Value:
        value, why = getattr(s.phases, name), s.phases.reasons.get(name, "not placed")
        if value is not None:
            return float(value), None, None
        if s.events.grokking_step is None and s.events.last_step is not None:
            return None, float(s.events.last_step), f"censored (> {s.events.last_step}): {why}"
        return None, None, f"left out: not placed in a run that grokked ({why})"

    return read


def _n_keys(s: Summary) -> Value:
    if s.key_frequencies:
        return float(len(s.key_frequencies)), None, None
    return None, None, f"left out: no key frequencies ({s.key_frequencies_reason or 'no reason recorded'})"


def _ablation(field: str) -> Callable[[Summary], Value]:
    def read(s: Summary) -> Value:
        v = getattr(s.ablation, field)
        if v is not None and math.isfinite(v):
            return float(v), None, None
        return None, None, f"left out: {s.ablation.reason or 'not measured'}"

    return read


def _final(field: str) -> Callable[[Summary], Value]:
    def read(s: Summary) -> Value:
        v = getattr(s.final, field)
        if v is not None and math.isfinite(v):
            return float(v), None, None
        return None, None, "left out: no final evaluation with this metric"

    return read


_QUANTITIES = (
    _Quantity("memorization_step", f"memorization step ({event_rule('memorization_step')})", "steps", "all",
              _event("memorization_step")),
    _Quantity("grokking_step", f"grokking step ({event_rule('grokking_step')})", "steps", "all",
              _event("grokking_step")),
    _Quantity("delay", f"delay ({event_rule('delay')})", "steps", "all", _event("delay")),
    _Quantity("memorization_end", "end of memorization (phase boundary)", "steps", "all",
              _boundary("memorization_end")),
    _Quantity("circuit_formation_end", "end of circuit formation (phase boundary)", "steps", "all",
              _boundary("circuit_formation_end")),
    _Quantity("cleanup_end", "end of cleanup (phase boundary)", "steps", "all", _boundary("cleanup_end")),
    _Quantity("n_key_frequencies", "number of key frequencies (neuron clusters)", "count", "grokked", _n_keys),
    _Quantity("key_frequency_acc_drop", "test accuracy drop, key frequencies removed", "points", "grokked",
              _ablation("key_frequency_acc_drop")),
    _Quantity("control_acc_drop_mean", "test accuracy drop, as many random frequencies removed (mean)",
              "points", "grokked", _ablation("control_acc_drop_mean")),
    _Quantity("final_test_acc", "final test accuracy", "fraction", "all", _final("test_acc")),
    _Quantity("final_test_loss", "final test loss", "nats", "all", _final("test_loss")),
)  # fmt: skip


def aggregate_seeds(
    summaries: Sequence[Summary], left_out: Sequence[SeedMember] = (), level: float = CI_LEVEL
) -> SeedAggregate:
    """The statistics over seeds of the analysed members ``summaries`` (one per seed, read from
    ``summary.config.seed``); ``left_out``: members without a usable analysis (failed, not
    analysed), listed with their state and reason. ValueError when the members are not one config
    (op, p, train fraction) or a seed appears twice."""
    if not summaries and not left_out:
        raise ValueError("no members to aggregate")
    seeds = [s.config.seed for s in summaries] + [m.seed for m in left_out]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a seed appears twice among the members: {sorted(seeds)}")
    tasks = {(s.config.op, s.config.p, s.config.train_frac) for s in summaries}
    if len(tasks) > 1:
        raise ValueError(f"the members are not one config: (op, p, train_frac) differ: {sorted(tasks)}")
    ordered = sorted(summaries, key=lambda s: s.config.seed)
    grokked = {s.config.seed: s.events.grokking_step is not None for s in ordered}
    members = [_member(s, grokked[s.config.seed]) for s in ordered] + list(left_out)
    members.sort(key=lambda m: m.seed)
    n_grokked = sum(grokked.values())
    first = ordered[0].config if ordered else None
    return SeedAggregate(
        name=first.name if first else "",
        op=first.op if first else "",
        p=first.p if first else 0,
        train_frac=first.train_frac if first else 0.0,
        seeds=sorted(seeds),
        members=members,
        n_included=len(ordered),
        n_grokked=n_grokked,
        fraction_grokked=n_grokked / len(ordered) if ordered else None,
        fraction_grokked_reason=None if ordered else "no member has a usable analysis",
        ci_level=level,
        ci_method=CI_METHOD,
        quantities=[_aggregate(q, ordered, grokked, level) for q in _QUANTITIES],
        warnings=[f"seed {m.seed} ({m.run}) left out: {m.reason}" for m in left_out],
    )


def _member(s: Summary, grokked: bool) -> SeedMember:
    return SeedMember(s.config.seed, s.run, s.state, True, None, grokked, s.events.last_step, list(s.key_frequencies))


def _aggregate(q: _Quantity, summaries: Sequence[Summary], grokked: Mapping[int, bool], level: float) -> SeedQuantity:
    values: dict[int, float | None] = {}
    reasons: dict[int, str] = {}
    censored_at: dict[int, float] = {}
    entering: list[tuple[float | None, float | None]] = []
    for s in summaries:
        seed = s.config.seed
        value, bound, why = q.read(s)
        if q.over == "grokked" and not grokked[seed]:
            shown = "none" if value is None else f"{value:g}"
            value, bound, why = None, None, f"left out: did not grok (its value: {shown})"
        values[seed] = value
        if why is not None:
            reasons[seed] = why
        if bound is not None:
            censored_at[seed] = bound
        if value is not None or bound is not None:
            entering.append((value, bound))
    n_left_out = len(summaries) - len(entering)
    if entering:
        st = seed_stats([v for v, _ in entering], level, bounds=[b for _, b in entering])
    else:
        st = SeedStats(0, 0, None, None, None, None, None, None, "no member has a value")
        if q.over == "grokked" and not any(grokked.values()):
            st = replace(st, reason="no member grokked")
    reason = st.reason
    if n_left_out and entering:
        note = f"over {st.n} of {len(summaries)} members ({n_left_out} left out: see the per-seed reasons)"
        reason = f"{reason}; {note}" if reason else note
    return SeedQuantity(
        q.name, q.label, q.unit, q.over, st.n, st.n_censored, n_left_out, st.median, st.q1, st.q3, st.ci_low,
        st.ci_high, st.ci_coverage, reason, values, reasons, censored_at,
    )  # fmt: skip


# ---------------------------------------------------------------- curves and groups


@dataclass(frozen=True)
class MedianCurve:
    """Median and quartiles of one metric across seeds at each step where any seed has a value;
    ``n[i]`` is how many seeds had one at ``steps[i]``."""

    steps: list[int]
    median: list[float]
    q1: list[float]
    q3: list[float]
    n: list[int]


def median_curve(metrics: Mapping[int, Iterable[Mapping[str, Any]]], key: str) -> MedianCurve:
    """The median curve of metric ``key`` over the evaluation records of each seed (``metrics``:
    seed -> records of metrics.jsonl); at each step, over the seeds with a finite value there."""
    by_step: dict[int, list[float]] = {}
    for records in metrics.values():
        for r in records:
            step, v = r.get("step"), r.get(key)
            if isinstance(step, int) and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                by_step.setdefault(step, []).append(float(v))
    steps = sorted(by_step)
    stats = [seed_stats(by_step[s]) for s in steps]
    return MedianCurve(steps, _known(st.median for st in stats), _known(st.q1 for st in stats),
                       _known(st.q3 for st in stats), [st.n for st in stats])  # fmt: skip


def _known(values: Iterable[float | None]) -> list[float]:
    """Statistics of observed values only (nothing censored), so never None."""
    out = []
    for v in values:
        assert v is not None, "a statistic of observed values is never None"
        out.append(float(v))
    return out


SEED_KEYS = (("seed",), ("task", "split_seed"), ("name",))


def seed_group_key(config: Mapping[str, Any]) -> str:
    """A key equal for configs (resolved config dicts, as config.yaml holds) that differ only in
    ``seed``, ``task.split_seed`` and the ``name`` label."""
    cfg = json.loads(json.dumps(config, default=str))
    for path in SEED_KEYS:
        node = cfg
        for part in path[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return json.dumps(cfg, sort_keys=True)
