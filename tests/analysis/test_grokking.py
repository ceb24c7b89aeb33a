"""Grokking events, phases and success criteria on synthetic curves whose answers are known."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from groklab.analysis.grokking import (
    final_metrics,
    grokking_events,
    half_drop_step,
    joined_records,
    phase_boundaries,
    success_criteria,
)
from groklab.records import ControlAblation, FrequencyAblation, FrequencyDraw, Phases, Score, Spread, from_json, to_json

STEPS = list(range(0, 10001, 100))


def geo(t: float, t0: float, t1: float, v0: float, v1: float) -> float:
    """Log-linear from v0 at t0 to v1 at t1, flat outside."""
    f = min(1.0, max(0.0, (t - t0) / (t1 - t0)))
    return math.exp(math.log(v0) + f * (math.log(v1) - math.log(v0)))


def curve(t: int) -> dict:
    """Memorize by 1000, test loss flat at 10 from 3000 to 5000, then down to 1e-3 by 8000;
    test accuracy from 0.01 at 6000 to 1.0 at 7000; restricted loss falls 2000-5000."""
    return {
        "step": t,
        "train_acc": 1.0 if t >= 1000 else t / 1100,
        "test_acc": 0.01 + 0.99 * min(1.0, max(0.0, (t - 6000) / 1000)),
        "train_loss": geo(t, 0, 1000, 4.0, 1e-3),
        "test_loss": geo(t, 0, 3000, 4.0, 10.0) if t < 5000 else geo(t, 5000, 8000, 10.0, 1e-3),
    }


def progress(t: int) -> dict:
    rec = curve(t)
    rec.update(
        restricted_loss=geo(t, 2000, 5000, 3.0, 1e-3),
        excluded_loss=geo(t, 1000, 8000, 1e-3, 30.0),
        gini_embed=0.05 + 0.8 * min(1.0, t / 8000),
        weight_norm=50.0 - 3e-3 * t,
    )
    return rec


METRICS = [curve(t) for t in STEPS]
PROGRESS = [progress(t) for t in STEPS[::5]]


def ablation(keys: list[int], key_drop: float, control_drop: float | None, n_draws: int) -> SimpleNamespace:
    """The part of an AblationReport the criteria read: the frequency ablation and its control."""
    draw = FrequencyDraw(keys, 1.0 - key_drop / 100, 1.0, key_drop)
    control = ControlAblation(
        len(keys), None, [draw] * n_draws, None if control_drop is None else Spread(control_drop, 0.1), None
    )
    baseline = Score(1.0, 0.1)
    return SimpleNamespace(
        frequency=FrequencyAblation(baseline, "all test pairs", draw, control), frequency_reason=None
    )


ABLATION = ablation([4, 14, 35], 92.0, 0.4, 10)


def test_events_on_a_grokking_curve():
    ev = grokking_events(METRICS)
    assert ev.memorization_step == 1000 and ev.grokking_step == 7000 and ev.delay == 6000
    assert ev.reasons == {} and ev.last_step == 10000 and ev.n_evals == len(STEPS)
    assert grokking_events(list(reversed(METRICS))) == ev  # order of records does not matter


def test_test_accuracy_that_touches_95_and_falls_back_is_not_grokking():
    m = [dict(r) for r in METRICS]
    for r in m:
        if 3000 <= r["step"] <= 3200:
            r["test_acc"] = 0.96  # touches, holds three evaluations, falls back
    assert grokking_events(m).grokking_step == 7000
    # reached and lost at the very end: no grokking step, and the reason says so
    m[-1]["test_acc"] = 0.9
    ev = grokking_events(m)
    assert ev.grokking_step is None and ev.delay is None
    assert "did not hold" in ev.reasons["grokking_step"] and "step 10000" in ev.reasons["grokking_step"]
    assert "no grokking step" in ev.reasons["delay"]


def test_never_memorizing_or_never_generalizing_gives_reasons():
    flat = [{"step": s, "train_acc": 0.5, "test_acc": 0.1} for s in STEPS]
    ev = grokking_events(flat)
    assert ev.memorization_step is None and ev.grokking_step is None and ev.delay is None
    assert "never reached 0.99" in ev.reasons["memorization_step"]
    assert "never reached 0.95" in ev.reasons["grokking_step"]
    assert "no memorization step and no grokking step" in ev.reasons["delay"]
    assert grokking_events([]).reasons["grokking_step"] == "no evaluation records test_acc"


def test_boundary_values_and_missing_entries():
    recs = [
        {"step": 0, "train_acc": 0.99, "test_acc": 0.95},
        {"step": 1, "train_acc": None, "test_acc": float("nan")},  # skipped
        {"step": 2, "train_acc": 1.0, "test_acc": 0.96},
    ]
    ev = grokking_events(recs)
    assert ev.memorization_step == 0 and ev.grokking_step == 0 and ev.delay == 0  # >= is inclusive


def test_phases_on_a_synthetic_curve():
    ph = phase_boundaries(METRICS)
    assert ph.memorization_end == 1000
    # gap g = ln(test/train) peaks at ln(1e4) from 3000 to 5000; 10% closed at 5300, 90% at 7700
    assert ph.gap_max == pytest.approx(math.log(1e4))
    assert ph.cleanup_start in (5300, 5400) and ph.cleanup_end in (7700, 7800)
    assert ph.first_step == 0 and ph.last_step == 10000 and ph.reasons == {}
    assert [c.phase for c in ph.changes] == ["memorization", "circuit_formation", "cleanup"]
    assert set(ph.rules) == {"memorization", "circuit_formation", "cleanup"}
    # progress records (coarser) with the finer events, as the run analysis does
    ph2 = phase_boundaries(PROGRESS, grokking_events(METRICS))
    assert ph2.memorization_end == 1000 and ph2.cleanup_start == 5500 and ph2.cleanup_end == 8000
    form = next(c for c in ph2.changes if c.phase == "circuit_formation").measures
    assert form["excluded_loss"]["end"] > form["excluded_loss"]["start"]  # rises while the circuit forms
    assert form["restricted_loss"]["end"] < form["restricted_loss"]["start"]
    assert from_json(Phases, json.loads(json.dumps(to_json(ph2), allow_nan=False))) == ph2


def test_a_loss_spike_is_not_a_phase_boundary():
    m = [dict(r) for r in METRICS]
    for r in m:
        if r["step"] in (4000, 9000):  # training instability: train loss jumps, train accuracy falls
            r.update(train_loss=3.0, train_acc=0.4)
    ph = phase_boundaries(m)
    assert ph.cleanup_start in (5300, 5400) and ph.cleanup_end in (7700, 7800)


def test_cleanup_is_measured_against_the_final_gap():
    # train loss keeps falling to 1e-5 while test loss stops at 1e-3: the gap settles at ln 100, not 0
    m = [
        dict(
            r,
            train_loss=geo(r["step"], 0, 1000, 4.0, 1e-3)
            if r["step"] < 5000
            else geo(r["step"], 5000, 8000, 1e-3, 1e-5),
        )
        for r in METRICS
    ]
    ph = phase_boundaries(m)
    assert ph.gap_max == pytest.approx(math.log(1e4)) and ph.gap_end == pytest.approx(math.log(100))
    # ln(test/train) falls linearly from ln 1e4 to ln 1e2 over 5000..8000: 10% at 5300, 90% at 7700
    assert ph.cleanup_start in (5300, 5400) and ph.cleanup_end in (7700, 7800)


def test_phases_of_a_run_that_did_not_grok():
    m = [dict(r, test_acc=0.2, test_loss=10.0) for r in METRICS]
    ph = phase_boundaries(m)
    assert ph.memorization_end == 1000 and ph.cleanup_start is None and ph.cleanup_end is None
    assert "did not grok" in ph.reasons["cleanup_start"]
    ph = phase_boundaries([dict(r, train_acc=0.5) for r in METRICS])
    assert ph.memorization_end is None and "never reached" in ph.reasons["memorization_end"]


def test_half_drop_step():
    recs = [{"step": s, "x": v} for s, v in [(0, 1.0), (10, 100.0), (20, 50.0), (30, 5.0), (40, 1.0)]]
    # ln 100 -> ln 1: halfway is 10, crossed between (20, 50) and (30, 5), interpolated in ln x
    assert half_drop_step(recs, "x") == pytest.approx(20 + 10 * math.log(50 / 10) / math.log(50 / 5))
    # from 50 to 1: halfway sqrt(50)
    assert half_drop_step(recs, "x", from_step=20) == pytest.approx(20 + 10 * math.log(50 / 50**0.5) / math.log(10))
    assert half_drop_step([{"step": 0, "x": 1.0}, {"step": 1, "x": 2.0}], "x") is None  # rises at the end
    assert half_drop_step(recs, "missing") is None


def test_success_criteria_all_pass_on_a_reproduction():
    crit = {c.name: c for c in success_criteria(METRICS, PROGRESS, ABLATION)}
    assert list(crit) == [
        "memorization_first",
        "generalization",
        "embedding_concentrated",
        "key_frequency_ablation",
        "control_ablation",
        "restricted_before_test",
    ]
    assert all(c.passed for c in crit.values()), {n: c.detail for n, c in crit.items() if not c.passed}
    assert crit["memorization_first"].value == pytest.approx(0.01)
    assert crit["generalization"].value == 1.0
    assert crit["embedding_concentrated"].value == pytest.approx(0.85)
    assert crit["key_frequency_ablation"].value == 92.0 and crit["control_ablation"].value == 0.4
    # restricted loss halfway (ln 3 -> ln 1e-3) at 3500 by the 500-step progress grid; test loss at 6500
    assert crit["restricted_before_test"].value == pytest.approx(6500 - 3500)


def test_success_criteria_fail_honestly():
    not_grokked = [dict(r, test_acc=min(r["test_acc"], 0.9)) for r in METRICS]
    bad_ablation = ablation([1], 12.0, 7.0, 0)
    late = [dict(r, restricted_loss=r["test_loss"] * 2) for r in PROGRESS]  # falls with test loss, not before
    crit = {c.name: c for c in success_criteria(not_grokked, late, bad_ablation, gini_threshold=0.9)}
    assert not any(c.passed for c in crit.values() if c.name != "memorization_first")
    assert crit["generalization"].value == pytest.approx(0.9) and "never reached" in crit["generalization"].detail
    assert crit["restricted_before_test"].value == pytest.approx(0, abs=1e-9)
    none = {c.name: c for c in success_criteria(METRICS, [], None)}
    assert none["key_frequency_ablation"].value is None and not none["key_frequency_ablation"].passed
    assert none["key_frequency_ablation"].detail == "no ablation report"
    assert none["embedding_concentrated"].value is None and none["restricted_before_test"].value is None
    no_keys = SimpleNamespace(frequency=None, frequency_reason="no key frequencies were found")
    crit = {c.name: c for c in success_criteria(METRICS, PROGRESS, no_keys)}
    assert crit["key_frequency_ablation"].detail == "no key frequencies were found"


def test_joined_records_and_final_metrics():
    joined = joined_records(METRICS, PROGRESS)
    assert [r["step"] for r in joined] == STEPS
    at = {r["step"]: r for r in joined}
    assert at[500]["restricted_loss"] == PROGRESS[1]["restricted_loss"] and "restricted_loss" not in at[600]
    final = final_metrics(METRICS)
    assert final.step == 10000 and final.test_acc == 1.0
    assert final_metrics([]).step is None
