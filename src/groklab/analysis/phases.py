"""Nanda et al.'s three phases (2023, section 5), placed on the progress measures.

Input: records sorted or not, each a dict with ``step`` and any of the metrics keys (train_acc,
train_loss, test_loss, ...) and the progress measures (excluded_loss, restricted_loss_test,
gini_unembed, ...): :func:`~groklab.analysis.grokking.joined_records` gives every evaluation with
the measures joined in at the steps that have saved weights (checkpoints or snapshots). The rules
in ``PHASE_RULES`` read the loss curves wherever they exist and the progress measures only where
they were measured: nothing is interpolated, so sparse and dense progress records are treated
alike, and a boundary that the records cannot place is None with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from groklab.analysis.grokking import grokking_events, series
from groklab.conventions import CLEANUP_CONFIRM_RECORDS, CLEANUP_LOSS_TOL, GINI_PLATEAU_TOL, ONSET_DROP
from groklab.records import GrokkingEvents, PhaseChange, Phases

__all__ = ["CHANGE_KEYS", "PHASE_RULES", "phase_boundaries"]

PHASE_RULES = {
    "memorization_end": (
        "the progress record at which the excluded loss (train split) is smallest, among the records from "
        "the memorization step (first train_acc >= 0.99) to circuit_formation_end (to the last record when "
        "that is None): the model starts to lean on the key frequencies. When the excluded loss already "
        "rises at the memorization step, this is the first progress record from it"
    ),
    "circuit_formation_end": (
        f"the onset of test loss's sharp fall: the first record after the peak of test loss (its largest "
        f"value from the memorization step on, over records with train_acc >= 0.99, so that a loss spike "
        f"is no peak) at which ln(test_loss) is at least {ONSET_DROP:g} below ln(peak) (test loss fallen "
        f"by a factor e^{ONSET_DROP:g}). A fixed drop from the peak, not a fraction of the whole fall, so "
        f"the boundary does not move when the run trains longer. Needs a run that grokked"
    ),
    "cleanup_end": (
        f"the first progress record from circuit_formation_end on from which, at every later progress "
        f"record too: |test_loss - restricted_loss_test| <= {CLEANUP_LOSS_TOL:g} nats (the test "
        f"predictions are those of the key frequencies alone: the memorizing components no longer matter "
        f"on the test pairs; an absolute tolerance because both losses keep falling with the logit scale "
        f"and their ratio does not settle), and the Gini of W_L (gini_unembed) is within a fraction "
        f"{GINI_PLATEAU_TOL:g} of its rise (first progress record to last) of its value at the last record "
        f"(its plateau). At least {CLEANUP_CONFIRM_RECORDS} later progress record must confirm it, otherwise "
        f"the run may have stopped mid-cleanup and the boundary is None"
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

Placed = tuple[int | None, str | None]  # (step, None) or (None, reason)


def phase_boundaries(records: Sequence[dict[str, Any]], events: GrokkingEvents | None = None) -> Phases:
    """Memorization / circuit formation / cleanup boundaries by the rules in ``PHASE_RULES``.

    ``events`` (default: ``grokking_events(records)``) gives the memorization and grokking steps;
    pass the events of the finer metrics log when ``records`` are progress records only.
    Boundaries are steps of ``records``; known ones are ordered (memorization_end <=
    circuit_formation_end <= cleanup_end).
    """
    steps = sorted({int(r["step"]) for r in records if r.get("step") is not None})
    ph = Phases(steps[0] if steps else None, None, None, None, steps[-1] if steps else None, dict(PHASE_RULES))
    ev = events if events is not None else grokking_events(records)
    if ev.memorization_step is None:
        why = ev.reasons.get("memorization_step", "no memorization step")
        ph.reasons = {"memorization_end": why, "circuit_formation_end": why, "cleanup_end": why}
        return ph
    found: dict[str, Placed] = {"circuit_formation_end": _circuit_formation_end(records, ev)}
    onset, no_onset = found["circuit_formation_end"]
    found["memorization_end"] = _memorization_end(records, ev.memorization_step, onset)
    found["cleanup_end"] = _cleanup_end(records, onset) if onset is not None else (None, no_onset)
    for name, (step, reason) in found.items():
        setattr(ph, name, step)
        if reason is not None:
            ph.reasons[name] = reason
    ph.changes = _changes(records, ph)
    return ph


def _circuit_formation_end(records: Sequence[dict[str, Any]], ev: GrokkingEvents) -> Placed:
    if ev.grokking_step is None:
        return None, f"the run did not grok ({ev.reasons.get('grokking_step', 'no grokking step')})"
    t0 = ev.memorization_step or 0
    acc = dict(series(records, "train_acc"))
    test = [(s, math.log(v)) for s, v in series(records, "test_loss") if s >= t0 and v > 0]
    fitted = [(s, y) for s, y in test if acc.get(s, 1.0) >= ev.train_threshold]
    if not fitted:
        return None, f"no record with a positive test loss and train_acc >= {ev.train_threshold} from step {t0}"
    peak_step, peak = max(fitted, key=lambda x: x[1])  # the first of equal maxima
    onset = next((s for s, y in test if s > peak_step and y <= peak - ONSET_DROP), None)
    if onset is None:
        return (
            None,
            f"test loss never fell a factor e^{ONSET_DROP:g} below its peak {math.exp(peak):.4g} (step {peak_step})",
        )
    return onset, None


def _memorization_end(records: Sequence[dict[str, Any]], t0: int, onset: int | None) -> Placed:
    excluded = series(records, "excluded_loss")
    if not excluded:
        return None, f"no excluded loss in the records ({_null_reason(records, 'excluded_loss')})"
    end = onset if onset is not None else excluded[-1][0]
    window = [(s, v) for s, v in excluded if t0 <= s <= end]
    if not window:
        return None, f"no progress record with the excluded loss between steps {t0} and {end}: too few saved steps"
    return min(window, key=lambda x: x[1])[0], None


def _cleanup_end(records: Sequence[dict[str, Any]], onset: int) -> Placed:
    cols = {k: dict(series(records, k)) for k in ("test_loss", "restricted_loss_test", "gini_unembed")}
    gini = series(records, "gini_unembed")
    pts = [s for s in sorted(cols["gini_unembed"]) if s >= onset and all(s in c for c in cols.values())]
    if not pts:
        missing = [k for k, c in cols.items() if not c]
        why = f" ({', '.join(f'{k}: {_null_reason(records, k)}' for k in missing)})" if missing else ""
        return (
            None,
            f"no progress record with test loss, restricted loss (test split) and W_L Gini from step {onset}{why}",
        )
    g0, g_last = gini[0][1], cols["gini_unembed"][pts[-1]]
    if g_last <= g0:
        return None, f"the Gini of W_L did not rise ({g0:.3f} at step {gini[0][0]}, {g_last:.3f} at step {pts[-1]})"

    def holds(s: int) -> bool:
        near = abs(cols["test_loss"][s] - cols["restricted_loss_test"][s]) <= CLEANUP_LOSS_TOL
        return near and abs(cols["gini_unembed"][s] - g_last) <= GINI_PLATEAU_TOL * (g_last - g0)

    ok = [holds(s) for s in pts]
    if not ok[-1]:
        diff = cols["test_loss"][pts[-1]] - cols["restricted_loss_test"][pts[-1]]
        return None, (
            f"cleanup has not ended by the last progress record (step {pts[-1]}): test loss - restricted loss "
            f"(test split) = {diff:.3g} nats there (tolerance {CLEANUP_LOSS_TOL:g}); the run stopped mid-cleanup "
            f"or its test loss never came near restricted loss"
        )
    first = max((i + 1 for i, good in enumerate(ok) if not good), default=0)  # holds from here to the end
    if len(pts) - 1 - first < CLEANUP_CONFIRM_RECORDS:
        return None, (
            f"the cleanup condition holds only from step {pts[first]}, with {len(pts) - 1 - first} later progress "
            f"record(s) (at least {CLEANUP_CONFIRM_RECORDS} needed): the run may have stopped mid-cleanup"
        )
    return pts[first], None


def _null_reason(records: Sequence[dict[str, Any]], key: str) -> str:
    """The reason a progress measure is missing, from the records' ``null_reasons`` when given."""
    for r in reversed(records):
        why = (r.get("null_reasons") or {}).get(key)
        if why:
            return str(why)
    return "not in the progress records"


def _changes(records: Sequence[dict[str, Any]], ph: Phases) -> list[PhaseChange]:
    """Each measure at the first and the last step inside the phase where it exists: the boundary
    itself when it has the measure (a progress measure needs saved weights there), else the nearest
    such step inside [start, end]; ``start_step`` and ``end_step`` say which."""
    out = []
    for name, a, b in ph.spans():
        vals = {}
        for key in CHANGE_KEYS:
            inside = [(s, v) for s, v in series(records, key) if a <= s <= b]
            if len(inside) >= 2:
                (sa, va), (sb, vb) = inside[0], inside[-1]
                vals[key] = {"start": va, "end": vb, "start_step": sa, "end_step": sb}
        out.append(PhaseChange(name, a, b, vals))
    return out
