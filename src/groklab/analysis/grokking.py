"""Grokking events and the success criteria of a reproduction, from records (phases: :mod:`.phases`).

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
from groklab.records import AblationReport, Criterion, FinalMetrics, GrokkingEvents, to_json

__all__ = [
    "CONTROL_DROP_MAX",
    "GINI_RISE_MIN",
    "KEY_DROP_MIN",
    "MEMORIZATION_TEST_MAX",
    "MIN_RECORDS_BETWEEN",
    "TEST_THRESHOLD",
    "TRAIN_THRESHOLD",
    "final_metrics",
    "grokking_events",
    "half_drop_step",
    "joined_records",
    "series",
    "success_criteria",
    "value_at",
]

MEMORIZATION_TEST_MAX = 0.5  # "test stays low": test accuracy at the memorization step below this
# Gini of the W_E spectrum, calibrated against initialisation: at init every frequency's norm is a chi
# variable with 2 * d_model degrees of freedom, so the spectrum is nearly flat (Gini about 0.03-0.05, by
# p and d_model); m equally strong frequencies out of N and nothing else give 1 - m/N (0.91 for 5 of 56,
# but only 0.62 for 3 of 8 at p = 17). The criterion asks for a fraction f of the way from Gini(init) to 1.
# Measured (the fraction reached; Gini(init) 0.038-0.043): grokked debug p = 17 run 0.36 at step 1500
# (0.35 where the reproduce stopping rule ends it, step 1060), quick p = 97 seeds 0-2 0.51, 0.65, 0.57
# at step 1500 and 0.70, 0.49, 0.51 where the stopping rule or the 3000-step budget ends them; the same
# runs at their memorization step 0.09-0.13, and 0.16-0.28 at step 400, mid circuit formation.
# 0.3 sits between.
GINI_RISE_MIN = 0.3
KEY_DROP_MIN = 30.0  # key-frequency ablation: test accuracy drop, percentage points, at least
CONTROL_DROP_MAX = 5.0  # random-frequency control: mean drop, percentage points, below
MIN_RECORDS_BETWEEN = 2  # restricted_before_test: progress records strictly between the two halfway crossings


def _field(record: Any, key: str) -> Any:
    return record.get(key) if isinstance(record, dict) else getattr(record, key, None)


def series(records: Sequence[Any], key: str) -> list[tuple[int, float]]:
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
    train, test = series(metrics, "train_acc"), series(metrics, "test_acc")
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


def value_at(records: Sequence[Any], key: str, step: int) -> float | None:
    """The finite value of ``key`` at exactly ``step`` (None when that record lacks it)."""
    return dict(series(records, key)).get(step)


# ---------------------------------------------------------------- success criteria


def _criterion(name: str, value: float | None, threshold: float, comparison: str, detail: str) -> Criterion:
    """``passed`` and ``margin`` (signed distance from the threshold in the passing direction) of a value."""
    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}
    passed = value is not None and bool(ops[comparison](value, threshold))
    margin = None if value is None else (threshold - value if comparison == "<" else value - threshold)
    return Criterion(name, value, threshold, comparison, passed, detail, margin)


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
    pts = [(s, v) for s, v in series(records, key) if from_step is None or s >= from_step]
    if not pts or any(v <= 0 for _, v in pts):
        return None
    i_max = max(range(len(pts)), key=lambda i: pts[i][1])
    hi, lo = math.log(pts[i_max][1]), math.log(pts[-1][1])
    if lo >= hi:
        return None
    mid = (hi + lo) / 2
    i = next(i for i in range(i_max, len(pts)) if math.log(pts[i][1]) <= mid)
    (s0, v0), (s1, v1) = pts[i - 1], pts[i]
    y0, y1 = math.log(v0), math.log(v1)
    return (float(s1) if y0 == y1 else s0 + (s1 - s0) * (y0 - mid) / (y0 - y1)), s0, s1


def success_criteria(
    metrics: Sequence[dict[str, Any]],
    progress: Sequence[Any],
    ablation: AblationReport | None,
    *,
    gini_rise: float = GINI_RISE_MIN,
) -> list[Criterion]:
    """The six criteria of a grokking reproduction, each {name, value, threshold, passed, margin, ...}:

    1. ``memorization_first``: test accuracy at the memorization step (train_acc >= 0.99) < 0.5.
    2. ``generalization``: final test accuracy >= 0.95, and held there (a grokking step exists).
    3. ``embedding_concentrated``: the W_E spectrum's Gini has come at least a fraction
       ``gini_rise`` (``GINI_RISE_MIN``) of the way from its value at initialisation to 1:
       value (G_last - G_0) / (1 - G_0) >= gini_rise, G_0 at the step-0 progress record, G_last at
       the last one (None, with the reason, without a step-0 record).
    4. ``key_frequency_ablation``: test accuracy drop (points) from removing the key frequencies >= 30.
    5. ``control_ablation``: mean drop over the random non-key controls < 5.
    6. ``restricted_before_test``: steps by which restricted loss (all pairs) reaches its log-scale
       halfway point (``half_drop_step`` from the memorization step, interpolated between progress
       records) before test loss does, both from the progress records; > 0, with at least
       ``MIN_RECORDS_BETWEEN`` progress records strictly between the two crossings (otherwise the
       order rests on interpolation between the same records: the criterion fails and says so).
    """
    ev = grokking_events(metrics)
    mem = ev.memorization_step
    at_mem = value_at(metrics, "test_acc", mem) if mem is not None else None
    why = f"train accuracy reached {TRAIN_THRESHOLD} at step {mem}; test accuracy then {at_mem}"
    why = ev.reasons["memorization_step"] if mem is None else why
    out = [_criterion("memorization_first", at_mem, MEMORIZATION_TEST_MAX, "<", why)]
    test = series(metrics, "test_acc")
    ok = ev.grokking_step is not None
    why = f"grokking step {ev.grokking_step}" if ok else ev.reasons.get("grokking_step", "")
    out.append(_criterion("generalization", test[-1][1] if test else None, TEST_THRESHOLD, ">=", why))
    out[-1].passed = out[-1].passed and ok
    out.append(_embedding_concentrated(progress, gini_rise))
    out.extend(_ablation_criteria(ablation))
    out.append(_restricted_before_test(progress, mem))
    return out


def _embedding_concentrated(progress: Sequence[Any], rise: float) -> Criterion:
    gini = series(progress, "gini_embed")
    g0 = dict(gini).get(0)
    if g0 is None or g0 >= 1:
        why = "no Gini in the progress records" if not gini else "no step-0 progress record to calibrate against"
        return _criterion("embedding_concentrated", None, rise, ">=", why)
    s_last, g_last = gini[-1]
    why = (
        f"fraction of the way from the W_E spectrum's Gini at initialisation ({g0:.3f}, step 0) to 1, at "
        f"step {s_last} (Gini {g_last:.3f}); passes at >= {rise:g}, i.e. Gini >= {g0 + rise * (1 - g0):.3f}"
    )
    return _criterion("embedding_concentrated", (g_last - g0) / (1 - g0), rise, ">=", why)


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
    lo, hi = sorted((h_r[0], h_t[0]))
    both = {s for s, _ in series(progress, "restricted_loss")} & {s for s, _ in series(progress, "test_loss")}
    between = sum(lo < s < hi for s in both)
    why = (
        f"halfway down (log scale, interpolated between progress records): restricted loss at step "
        f"{h_r[0]:.0f} (records {h_r[1]}-{h_r[2]}), test loss at step {h_t[0]:.0f} (records {h_t[1]}-{h_t[2]}); "
        f"{between} progress record(s) between the two"
    )
    crit = _criterion("restricted_before_test", h_t[0] - h_r[0], 0.0, ">", why)
    if between < MIN_RECORDS_BETWEEN:
        crit.passed = False
        crit.detail += (
            f", fewer than {MIN_RECORDS_BETWEEN}: the order rests on interpolation between the same progress "
            "records (save weights more densely)"
        )
    return crit


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
