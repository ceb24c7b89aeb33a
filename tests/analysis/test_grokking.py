"""Grokking events and success criteria on synthetic curves whose answers are known."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from groklab.analysis.grokking import (
    GINI_RISE_MIN,
    final_metrics,
    grokking_events,
    half_drop_step,
    joined_records,
    success_criteria,
)
from groklab.records import ControlAblation, FrequencyAblation, FrequencyDraw, Score, Spread

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
    # Gini 0.05 at step 0, 0.85 at the end: (0.85 - 0.05) / (1 - 0.05) of the way to 1
    assert crit["embedding_concentrated"].value == pytest.approx(0.8 / 0.95)
    assert crit["embedding_concentrated"].threshold == GINI_RISE_MIN
    assert crit["key_frequency_ablation"].value == 92.0 and crit["control_ablation"].value == 0.4
    # restricted loss halfway (ln 3 -> ln 1e-3) at 3500 by the 500-step progress grid; test loss at 6500,
    # with the records 4000..6000 (five) between the two crossings
    assert crit["restricted_before_test"].value == pytest.approx(6500 - 3500)
    assert "5 progress record(s) between" in crit["restricted_before_test"].detail


def test_criteria_carry_their_margin_in_the_passing_direction():
    crit = {c.name: c for c in success_criteria(METRICS, PROGRESS, ABLATION)}
    assert crit["memorization_first"].margin == pytest.approx(0.5 - 0.01)  # "<": threshold - value
    assert crit["generalization"].margin == pytest.approx(1.0 - 0.95)  # ">=": value - threshold
    assert crit["embedding_concentrated"].margin == pytest.approx(0.8 / 0.95 - GINI_RISE_MIN)
    assert crit["key_frequency_ablation"].margin == pytest.approx(62.0)
    assert crit["control_ablation"].margin == pytest.approx(4.6)
    assert crit["restricted_before_test"].margin == pytest.approx(3000)
    assert all(c.passed == (c.margin > 0) for c in crit.values())
    bad = {c.name: c for c in success_criteria(METRICS, PROGRESS, ablation([1], 12.0, 7.0, 3))}
    assert bad["key_frequency_ablation"].margin == pytest.approx(-18.0) and not bad["key_frequency_ablation"].passed
    assert bad["control_ablation"].margin == pytest.approx(-2.0) and not bad["control_ablation"].passed
    none = {c.name: c for c in success_criteria(METRICS, [], None)}
    assert none["embedding_concentrated"].margin is None and none["key_frequency_ablation"].margin is None


def test_gini_criterion_is_calibrated_against_initialisation():
    # the same final Gini passes or fails by where it started: f of the way from Gini(0) to 1
    for g0, passed in ((0.05, True), (0.8, False)):
        prog = [dict(r, gini_embed=g0 + (0.85 - g0) * min(1.0, r["step"] / 8000)) for r in PROGRESS]
        crit = {c.name: c for c in success_criteria(METRICS, prog, ABLATION)}["embedding_concentrated"]
        assert crit.value == pytest.approx((0.85 - g0) / (1 - g0)) and crit.passed is passed
        assert f"{g0:.3f}" in crit.detail and f"{g0 + GINI_RISE_MIN * (1 - g0):.3f}" in crit.detail
    no_init = {c.name: c for c in success_criteria(METRICS, PROGRESS[1:], ABLATION)}["embedding_concentrated"]
    assert no_init.value is None and not no_init.passed and "no step-0 progress record" in no_init.detail
    strict = success_criteria(METRICS, PROGRESS, ABLATION, gini_rise=0.9)
    assert not next(c for c in strict if c.name == "embedding_concentrated").passed


def test_restricted_before_test_needs_progress_records_between_the_crossings():
    # restricted loss halfway at 3500, test loss at 6500 (500-step grid). With records only at 0, 1000,
    # 3000, 7000 and 10000 both crossings fall between the records 3000 and 7000: the order would rest on
    # interpolation between the same two records, so the criterion fails and says so.
    sparse = [r for r in PROGRESS if r["step"] in (0, 1000, 3000, 7000, 10000)]
    crit = next(c for c in success_criteria(METRICS, sparse, ABLATION) if c.name == "restricted_before_test")
    assert crit.value > 0 and crit.margin == crit.value and not crit.passed
    assert "records 3000-7000" in crit.detail and "0 progress record(s) between" in crit.detail
    assert "interpolation between the same progress records" in crit.detail
    # one record between (5000): still fewer than two
    one = [r for r in PROGRESS if r["step"] in (0, 1000, 3000, 5000, 7000, 10000)]
    crit = next(c for c in success_criteria(METRICS, one, ABLATION) if c.name == "restricted_before_test")
    assert not crit.passed and "1 progress record(s) between" in crit.detail
    two = [r for r in PROGRESS if r["step"] in (0, 1000, 3000, 4500, 5500, 7000, 10000)]
    crit = next(c for c in success_criteria(METRICS, two, ABLATION) if c.name == "restricted_before_test")
    assert crit.passed and "2 progress record(s) between" in crit.detail


def test_success_criteria_fail_honestly():
    not_grokked = [dict(r, test_acc=min(r["test_acc"], 0.9)) for r in METRICS]
    bad_ablation = ablation([1], 12.0, 7.0, 0)
    late = [dict(r, restricted_loss=r["test_loss"] * 2) for r in PROGRESS]  # falls with test loss, not before
    crit = {c.name: c for c in success_criteria(not_grokked, late, bad_ablation, gini_rise=0.9)}
    assert not any(c.passed for c in crit.values() if c.name != "memorization_first")
    assert crit["generalization"].value == pytest.approx(0.9) and "never reached" in crit["generalization"].detail
    assert crit["restricted_before_test"].value == pytest.approx(0, abs=1e-9)
    none = {c.name: c for c in success_criteria(METRICS, [], None)}
    assert none["key_frequency_ablation"].value is None and not none["key_frequency_ablation"].passed
    assert none["key_frequency_ablation"].detail == "no ablation report"
    assert none["embedding_concentrated"].value is None and none["restricted_before_test"].value is None
    assert none["embedding_concentrated"].detail == "no Gini in the progress records"
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
