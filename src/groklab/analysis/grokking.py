"""Grokking events, phase boundaries and the success criteria of a reproduction, from records.

Inputs are lists of records, one per evaluation, with at least ``step``: the lines of
``metrics.jsonl`` (dicts: train_acc, test_acc, train_loss, test_loss, ...) or
:class:`~groklab.records.Progress` records. Records are sorted by step; records missing a needed key (or holding
None there) are skipped for the measure that needs it. Nothing here invents a number: an event
that did not happen is None, with the reason in ``reasons``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from groklab.conventions import TEST_THRESHOLD, TRAIN_THRESHOLD
from groklab.records import AblationReport, Criterion, FinalMetrics, GrokkingEvents, PhaseChange, Phases, to_json

__all__ = [
    "CONTROL_DROP_MAX",
    "GINI_THRESHOLD",
    "KEY_DROP_MIN",
    "MEMORIZATION_TEST_MAX",
    "TEST_THRESHOLD",
    "TRAIN_THRESHOLD",
    "grokking_events",
    "half_drop_step",
    "phase_boundaries",
    "final_metrics",
    "joined_records",
    "success_criteria",
]

MEMORIZATION_TEST_MAX = 0.5  # "test stays low": test accuracy at the memorization step below this
# Gini of the W_E spectrum. At initialisation every frequency's norm is a chi variable with 2 * d_model
# degrees of freedom, so the spectrum is nearly flat (Gini about 0.03 for the nanda model); m equally
# strong frequencies out of N and nothing else give 1 - m/N (0.91 for 5 of 56). 0.5 sits well between.
GINI_THRESHOLD = 0.5
KEY_DROP_MIN = 30.0  # key-frequency ablation: test accuracy drop, percentage points, at least
CONTROL_DROP_MAX = 5.0  # random-frequency control: mean drop, percentage points, below


def _field(record: Any, key: str) -> Any:
    return record.get(key) if isinstance(record, dict) else getattr(record, key, None)


def _series(records: Sequence[Any], key: str) -> list[tuple[int, float]]:
    """[(step, value)] sorted by step, for records (dicts or dataclasses) where ``key`` holds a
    finite number."""
    out = []
    for r in records:
        v, step = _field(r, key), _field(r, "step")
        if step is not None and isinstance(v, int | float) and math.isfinite(v):
            out.append((int(step), float(v)))
    return sorted(out)


def grokking_events(
    metrics: Sequence[dict[str, Any]], train_threshold: float = TRAIN_THRESHOLD, test_threshold: float = TEST_THRESHOLD
) -> GrokkingEvents:
    """Grokking events from evaluation records (keys step, train_acc, test_acc)."""
    train, test = _series(metrics, "train_acc"), _series(metrics, "test_acc")
    steps = sorted({s for s, _ in train} | {s for s, _ in test})
    ev = GrokkingEvents(None, None, None, steps[-1] if steps else None, len(steps), train_threshold, test_threshold)
    if not train:
        ev.reasons["memorization_step"] = "no evaluation records train_acc"
    else:
        hit = [s for s, v in train if v >= train_threshold]
        if hit:
            ev.memorization_step = hit[0]
        else:
            best = max(train, key=lambda x: x[1])
            ev.reasons["memorization_step"] = (
                f"train accuracy never reached {train_threshold} (best {best[1]:.4f} at step {best[0]})"
            )
    if not test:
        ev.reasons["grokking_step"] = "no evaluation records test_acc"
    else:
        below = [i for i, (_, v) in enumerate(test) if v < test_threshold]
        if not below:
            ev.grokking_step = test[0][0]
        elif below[-1] + 1 < len(test):
            ev.grokking_step = test[below[-1] + 1][0]
        else:
            reached = [s for s, v in test if v >= test_threshold]
            last_s, last_v = test[-1]
            if reached:
                ev.reasons["grokking_step"] = (
                    f"test accuracy reached {test_threshold} at step {reached[0]} but did not hold: "
                    f"{last_v:.4f} at the last evaluation (step {last_s})"
                )
            else:
                best = max(test, key=lambda x: x[1])
                ev.reasons["grokking_step"] = (
                    f"test accuracy never reached {test_threshold} (best {best[1]:.4f} at step {best[0]})"
                )
    if ev.memorization_step is not None and ev.grokking_step is not None:
        ev.delay = ev.grokking_step - ev.memorization_step
    else:
        missing = [n for n in ("memorization_step", "grokking_step") if getattr(ev, n) is None]
        ev.reasons["delay"] = f"no {' and no '.join(m.replace('_', ' ') for m in missing)}"
    return ev


# ---------------------------------------------------------------- phases

PHASE_RULES = {
    "memorization": "from the first evaluation to the memorization step (first train_acc >= 0.99)",
    "circuit_formation": (
        "from the memorization step until the log-loss gap g = ln(test_loss) - ln(train_loss) has closed "
        "by a fraction `start` (0.1) of the way from its largest value g_max (at or after the memorization "
        "step) to its value g_end at the last record: test loss has begun its fall while train loss stays "
        "low. Only records with train_acc >= 0.99 count, so a loss spike is not taken for a phase change"
    ),
    "cleanup": (
        "from there until the first record from which g stays within a fraction 1 - `end` (0.9) of that way "
        "from g_end: the gap has settled at its final level, the memorizing components are gone. Measured "
        "against the final gap, since a trained model keeps train loss below test loss; for a run stopped "
        "mid-cleanup the phase ends near the last record"
    ),
}


CHANGE_KEYS = (
    "train_loss",
    "test_loss",
    "restricted_loss",
    "excluded_loss",
    "gini_embed",
    "gini_unembed",
    "weight_norm",
)


def _value_at(records: Sequence[dict[str, Any]], key: str, step: int) -> float | None:
    series = dict(_series(records, key))
    return series.get(step)


def phase_boundaries(
    records: Sequence[dict[str, Any]],
    events: GrokkingEvents | None = None,
    *,
    start: float = 0.1,
    end: float = 0.9,
) -> Phases:
    """Memorization / circuit formation / cleanup boundaries by the rules in ``PHASE_RULES``.

    Uses train_loss and test_loss of ``records`` (metrics or progress records; the finer, the
    sharper the boundaries), and the memorization and grokking steps of ``events`` (default:
    ``grokking_events(records)``; pass the events of the finer metrics log when ``records`` are
    progress records). The cleanup boundaries need a run that grokked and a positive loss gap
    after memorization. Boundaries are steps of ``records``, except ``memorization_end``, which
    is the memorization step of ``events``.
    """
    rules = {
        k: v.replace("`start` (0.1)", f"{start}").replace("1 - `end` (0.9)", f"{1 - end:.2g}")
        for k, v in PHASE_RULES.items()
    }
    steps = sorted({int(r["step"]) for r in records if r.get("step") is not None})
    ph = Phases(steps[0] if steps else None, None, None, None, steps[-1] if steps else None, None, None, rules)
    ev = events if events is not None else grokking_events(records)
    ph.memorization_end = ev.memorization_step
    if ev.memorization_step is None:
        ph.reasons["memorization_end"] = ev.reasons["memorization_step"]
        ph.reasons["cleanup_start"] = ph.reasons["cleanup_end"] = "no memorization step"
        return ph
    t0 = ev.memorization_step
    train, test = dict(_series(records, "train_loss")), dict(_series(records, "test_loss"))
    acc = dict(_series(records, "train_acc"))
    # records where the training set is still fitted: a loss spike (train_acc falling) is no phase change
    fitted = [s for s in sorted(train) if s >= t0 and s in test and acc.get(s, 1.0) >= ev.train_threshold]
    gap = [(s, math.log(test[s]) - math.log(train[s])) for s in fitted if train[s] > 0 and test[s] > 0]
    why = None
    if ev.grokking_step is None:
        why = f"the run did not grok ({ev.reasons['grokking_step']})"
    elif not gap:
        why = "no records with positive train and test loss after the memorization step"
    elif max(g for _, g in gap) <= 0:
        why = "test loss never exceeded train loss after the memorization step"
    if why is not None:
        ph.reasons["cleanup_start"] = ph.reasons["cleanup_end"] = why
    else:
        i_max = max(range(len(gap)), key=lambda i: gap[i][1])
        g_max, g_end = gap[i_max][1], gap[-1][1]
        ph.gap_max, ph.gap_end = g_max, g_end
        after = gap[i_max:]
        if g_max - g_end <= 0:
            ph.reasons["cleanup_start"] = ph.reasons["cleanup_end"] = "the loss gap is largest at the last record"
        else:
            ph.cleanup_start = next(s for s, g in after if g <= g_max - start * (g_max - g_end))
            level = g_max - end * (g_max - g_end)
            settled = [i for i in range(len(after)) if all(g <= level for _, g in after[i:])]
            ph.cleanup_end = max(after[settled[0]][0], ph.cleanup_start)
    spans = [
        ("memorization", ph.first_step, ph.memorization_end),
        ("circuit_formation", ph.memorization_end, ph.cleanup_start),
        ("cleanup", ph.cleanup_start, ph.cleanup_end),
    ]
    for name, a, b in spans:
        if a is None or b is None:
            continue
        vals = {}
        for key in CHANGE_KEYS:
            va, vb = _value_at(records, key, a), _value_at(records, key, b)
            if va is not None and vb is not None:
                vals[key] = {"start": va, "end": vb}
        ph.changes.append(PhaseChange(name, a, b, vals))
    return ph


# ---------------------------------------------------------------- success criteria


def _criterion(name: str, value: float | None, threshold: float, comparison: str, detail: str) -> Criterion:
    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}
    passed = value is not None and bool(ops[comparison](value, threshold))
    return Criterion(name, value, threshold, comparison, passed, detail)


def half_drop_step(records: Sequence[dict[str, Any]], key: str, from_step: int | None = None) -> float | None:
    """Step at which ``key`` has fallen halfway, in log scale, from its largest value (at or after
    ``from_step``) to its value at the last record: where ln x first reaches (ln max + ln last) / 2
    after the max, interpolated linearly in ln x between the two records around the crossing (so
    that sparse checkpoints still order two curves). None when the series is missing, not positive
    or ends at its max."""
    found = _half_drop(records, key, from_step)
    return None if found is None else found[0]


def _half_drop(records: Sequence[dict[str, Any]], key: str, from_step: int | None) -> tuple[float, int, int] | None:
    """(interpolated step, record step before, record step after) of ``half_drop_step``."""
    series = [(s, v) for s, v in _series(records, key) if from_step is None or s >= from_step]
    if not series or any(v <= 0 for _, v in series):
        return None
    i_max = max(range(len(series)), key=lambda i: series[i][1])
    hi, lo = math.log(series[i_max][1]), math.log(series[-1][1])
    if lo >= hi:
        return None
    mid = (hi + lo) / 2
    i = next(i for i in range(i_max, len(series)) if math.log(series[i][1]) <= mid)
    (s0, v0), (s1, v1) = series[i - 1], series[i]
    y0, y1 = math.log(v0), math.log(v1)
    return (float(s1) if y0 == y1 else s0 + (s1 - s0) * (y0 - mid) / (y0 - y1)), s0, s1


def success_criteria(
    metrics: Sequence[dict[str, Any]],
    progress: Sequence[Any],
    ablation: AblationReport | None,
    *,
    gini_threshold: float = GINI_THRESHOLD,
) -> list[Criterion]:
    """The six criteria of a grokking reproduction, each {name, value, threshold, passed, ...}:

    1. ``memorization_first``: test accuracy at the memorization step (train_acc >= 0.99) < 0.5.
    2. ``generalization``: final test accuracy >= 0.95, and held there (a grokking step exists).
    3. ``embedding_concentrated``: Gini of the W_E spectrum at the last progress record >=
       ``gini_threshold`` (see ``GINI_THRESHOLD``).
    4. ``key_frequency_ablation``: test accuracy drop (points) from removing the key frequencies >= 30.
    5. ``control_ablation``: mean drop over the random non-key controls < 5.
    6. ``restricted_before_test``: steps by which restricted loss (all pairs) reaches its log-scale
       halfway point (``half_drop_step`` from the memorization step, interpolated between progress
       records) before test loss does, both from the progress records; > 0.
    """
    ev = grokking_events(metrics)
    mem = ev.memorization_step
    at_mem = _value_at(metrics, "test_acc", mem) if mem is not None else None
    why = f"train accuracy reached {TRAIN_THRESHOLD} at step {mem}; test accuracy then {at_mem}"
    why = ev.reasons["memorization_step"] if mem is None else why
    out = [_criterion("memorization_first", at_mem, MEMORIZATION_TEST_MAX, "<", why)]
    test = _series(metrics, "test_acc")
    ok = ev.grokking_step is not None
    why = f"grokking step {ev.grokking_step}" if ok else ev.reasons.get("grokking_step", "")
    out.append(_criterion("generalization", test[-1][1] if test else None, TEST_THRESHOLD, ">=", why))
    out[-1].passed = out[-1].passed and ok
    gini = _series(progress, "gini_embed")
    why = f"Gini of the W_E spectrum at step {gini[-1][0]}" if gini else "no Gini in the progress records"
    out.append(_criterion("embedding_concentrated", gini[-1][1] if gini else None, gini_threshold, ">=", why))
    out.extend(_ablation_criteria(ablation))
    out.append(_restricted_before_test(progress, mem))
    return out


def _ablation_criteria(ablation: AblationReport | None) -> list[Criterion]:
    freq = ablation.frequency if ablation is not None else None
    if freq is None:
        missing = "no ablation report" if ablation is None else ablation.frequency_reason or "no key frequencies"
        return [
            _criterion("key_frequency_ablation", None, KEY_DROP_MIN, ">=", missing),
            _criterion("control_ablation", None, CONTROL_DROP_MAX, "<", missing),
        ]
    keys, ctrl = freq.key.frequencies, freq.control
    why = f"test accuracy drop (points) removing frequencies {keys} from W_E"
    out = [_criterion("key_frequency_ablation", freq.key.acc_drop, KEY_DROP_MIN, ">=", why)]
    if ctrl.acc_drop is None:
        out.append(_criterion("control_ablation", None, CONTROL_DROP_MAX, "<", ctrl.note or "no control draws"))
    else:
        why = f"mean test accuracy drop (points) over {len(ctrl.draws)} draws of {len(keys)} random non-key frequencies"
        out.append(_criterion("control_ablation", ctrl.acc_drop.mean, CONTROL_DROP_MAX, "<", why))
    return out


def _restricted_before_test(progress: Sequence[Any], mem: int | None) -> Criterion:
    h_r, h_t = _half_drop(progress, "restricted_loss", mem), _half_drop(progress, "test_loss", mem)
    if h_r is None or h_t is None:
        names = [n for n, h in (("restricted loss", h_r), ("test loss", h_t)) if h is None]
        why = f"no halfway point (log scale, after memorization) for {' and '.join(names)}"
        return _criterion("restricted_before_test", None, 0.0, ">", why)
    why = (
        f"halfway down (log scale, interpolated between progress records): restricted loss at step "
        f"{h_r[0]:.0f} (records {h_r[1]}-{h_r[2]}), test loss at step {h_t[0]:.0f} (records {h_t[1]}-{h_t[2]})"
    )
    return _criterion("restricted_before_test", h_t[0] - h_r[0], 0.0, ">", why)


def joined_records(metrics: Sequence[dict[str, Any]], progress: Sequence[Any]) -> list[dict[str, Any]]:
    """Evaluation records with the progress measures joined in at checkpoint steps, by step: the
    input of :func:`phase_boundaries` (finest resolution for losses, measures where they exist)."""
    by_step = {int(r["step"]): dict(r) for r in metrics if r.get("step") is not None}
    for r in progress:
        rec = r if isinstance(r, dict) else to_json(r)
        if rec.get("step") is not None:
            by_step.setdefault(int(rec["step"]), {}).update({k: v for k, v in rec.items() if v is not None})
    return [by_step[s] | {"step": s} for s in sorted(by_step)]


def final_metrics(metrics: Sequence[dict[str, Any]]) -> FinalMetrics:
    """The last evaluation's step, losses and accuracies (all None without evaluations)."""
    last = max(metrics, key=lambda r: r.get("step", -1)) if metrics else {}
    return FinalMetrics(*(last.get(k) for k in ("step", "train_loss", "train_acc", "test_loss", "test_acc")))
