"""Nanda et al.'s phases: synthetic curves whose boundaries are designed, and a real grokked run."""

from __future__ import annotations

import json
import math

import pytest

from groklab.analysis.grokking import grokking_events, joined_records
from groklab.analysis.phases import PHASE_RULES, phase_boundaries
from groklab.conventions import CLEANUP_LOSS_TOL, GINI_PLATEAU_TOL, ONSET_DROP, PHASES
from groklab.records import Phases, from_json, to_json
from groklab.runs import Run

STEPS = list(range(0, 10001, 100))


def geo(t: float, t0: float, t1: float, v0: float, v1: float) -> float:
    """Log-linear from v0 at t0 to v1 at t1, flat outside."""
    f = min(1.0, max(0.0, (t - t0) / (t1 - t0)))
    return math.exp(math.log(v0) + f * (math.log(v1) - math.log(v0)))


def lin(t: float, t0: float, t1: float, v0: float, v1: float) -> float:
    return v0 + min(1.0, max(0.0, (t - t0) / (t1 - t0))) * (v1 - v0)


def metric(t: int) -> dict:
    """Memorize at 1000; test loss up to exactly 10 by 3000, flat to 5000, then log-linear down to 1e-3
    at 8000 (ln 1e4 over 3000 steps, so one nat below the peak at 5326); test accuracy 0.01 -> 1 over
    6000-7000 (grokking step 7000)."""
    test = 10.0 if 3000 <= t <= 5000 else geo(t, 0, 3000, 4.0, 10.0) if t < 3000 else geo(t, 5000, 8000, 10.0, 1e-3)
    return {
        "step": t,
        "train_acc": 1.0 if t >= 1000 else t / 1100,
        "test_acc": 0.01 + 0.99 * min(1.0, max(0.0, (t - 6000) / 1000)),
        "train_loss": geo(t, 0, 1000, 4.0, 1e-3),
        "test_loss": test,
    }


def measures(t: int) -> dict:
    """Progress measures: excluded loss falls to its minimum 0.5 at 2000, rises, and dips again to 0.1
    at 9000 (after circuit formation: not the memorization boundary); restricted loss (test split) is
    half the test loss, so |test - restricted| <= 0.01 from test loss 0.02 on (7024); the W_L Gini
    rises linearly 0.03 -> 0.83 over 3000-8000, within 10% of its rise (0.08) of its final value from
    7500 on. Designed: memorization_end 2000, circuit_formation_end 5400, cleanup_end 7500."""
    rec = metric(t)
    excluded = geo(t, 0, 2000, 4.0, 0.5) if t <= 2000 else geo(t, 2000, 8000, 0.5, 30.0)
    if t == 9000:
        excluded = 0.1
    rec.update(
        excluded_loss=excluded,
        restricted_loss_test=rec["test_loss"] / 2,
        restricted_loss=geo(t, 2000, 5000, 3.0, 1e-3),
        gini_unembed=lin(t, 3000, 8000, 0.03, 0.83),
        weight_norm=50.0 - 3e-3 * t,
    )
    return rec


METRICS = [metric(t) for t in STEPS]
DENSE = [measures(t) for t in STEPS]  # progress at every evaluation
SPARSE = [measures(t) for t in STEPS[::5]]  # progress every 500 steps


def boundaries(ph: Phases) -> tuple:
    return ph.memorization_end, ph.circuit_formation_end, ph.cleanup_end


def test_the_designed_boundaries_on_dense_and_sparse_progress():
    events = grokking_events(METRICS)
    assert (events.memorization_step, events.grokking_step) == (1000, 7000)
    for progress in (DENSE, SPARSE):
        ph = phase_boundaries(joined_records(METRICS, progress), events)
        assert boundaries(ph) == (2000, 5400, 7500), ph.reasons
        assert ph.reasons == {} and ph.first_step == 0 and ph.last_step == 10000
        assert [n for n, _, _ in ph.spans()] == list(PHASES)
        assert ph.spans() == [("memorization", 0, 2000), ("circuit_formation", 2000, 5400), ("cleanup", 5400, 7500)]
        assert set(ph.rules) == set(PHASE_RULES) == {"memorization_end", "circuit_formation_end", "cleanup_end"}
        assert from_json(Phases, json.loads(json.dumps(to_json(ph), allow_nan=False))) == ph
    # progress records alone (no evaluations in between): boundaries on the 500-step grid
    ph = phase_boundaries(SPARSE, events)
    assert boundaries(ph) == (2000, 5500, 7500)


def test_each_boundary_has_the_property_that_defines_it():
    records = joined_records(METRICS, SPARSE)
    ph = phase_boundaries(records, grokking_events(METRICS))
    mem, onset, clean = boundaries(ph)
    # memorization_end IS the argmin of the excluded loss over the progress records from the memorization
    # step to circuit_formation_end (the global minimum after memorization, the dip at 9000, is later)
    window = {r["step"]: r["excluded_loss"] for r in SPARSE if 1000 <= r["step"] <= onset}
    assert min(window, key=window.get) == mem
    assert min((r for r in SPARSE if r["step"] >= 1000), key=lambda r: r["excluded_loss"])["step"] == 9000
    # circuit_formation_end: the first record ONSET_DROP nats below the peak (10 at 3000)
    below = [r["step"] for r in records if r["step"] > 3000 and math.log(r["test_loss"]) <= math.log(10) - ONSET_DROP]
    assert onset == below[0] == 5400
    # cleanup_end: from it on, at every progress record, test ~ restricted and the Gini on its plateau;
    # not so at the record before it
    g0, g_last = SPARSE[0]["gini_unembed"], SPARSE[-1]["gini_unembed"]

    def holds(r: dict) -> bool:
        near = abs(r["test_loss"] - r["restricted_loss_test"]) <= CLEANUP_LOSS_TOL
        return near and abs(r["gini_unembed"] - g_last) <= GINI_PLATEAU_TOL * (g_last - g0)

    assert all(holds(r) for r in SPARSE if r["step"] >= clean)
    assert not holds(next(r for r in reversed(SPARSE) if r["step"] < clean))
    changes = {c.phase: c for c in phase_boundaries(joined_records(METRICS, DENSE)).changes}
    formation = changes["circuit_formation"].measures["excluded_loss"]
    assert formation["end"] > formation["start"]  # the excluded loss rises while the circuit forms
    # at boundaries with progress records the measures are read there
    assert (formation["start_step"], formation["end_step"]) == (changes["circuit_formation"].start, onset)
    assert (changes["cleanup"].start, changes["cleanup"].end) == (onset, clean)


def test_the_loss_condition_can_be_the_later_one():
    # restricted loss at a tenth of the test loss: near (difference <= 0.01) only from test loss 0.0111 on,
    # ln(10/0.0111) = 6.80 nats down the fall, step 7215 -> the record at 7300, after the Gini plateau (7500
    # on the sparse grid, 7300 < 7500 on the dense one: the later of the two conditions places the boundary)
    dense = [dict(r, restricted_loss_test=r["test_loss"] / 10) for r in DENSE]
    assert phase_boundaries(joined_records(METRICS, dense)).cleanup_end == 7500
    late_gini = [dict(r, gini_unembed=lin(r["step"], 3000, 6000, 0.03, 0.83)) for r in dense]
    assert phase_boundaries(joined_records(METRICS, late_gini)).cleanup_end == 7300


def test_a_loss_spike_is_not_the_peak_of_test_loss():
    spiked = [dict(r, train_acc=0.4, train_loss=3.0, test_loss=50.0) if r["step"] == 6000 else r for r in METRICS]
    ph = phase_boundaries(joined_records(spiked, SPARSE))
    assert ph.circuit_formation_end == 5400


def test_a_run_that_did_not_grok_says_which_boundaries_are_missing():
    flat, flat_progress = ([dict(r, test_acc=0.2, test_loss=10.0) for r in rs] for rs in (METRICS, SPARSE))
    ph = phase_boundaries(joined_records(flat, flat_progress))
    assert ph.circuit_formation_end is None and ph.cleanup_end is None
    assert "did not grok" in ph.reasons["circuit_formation_end"] and "did not grok" in ph.reasons["cleanup_end"]
    # memorization_end still exists: the excluded-loss minimum after memorization, to the last record
    assert ph.memorization_end == 9000 and "memorization_end" not in ph.reasons
    never = phase_boundaries([dict(r, train_acc=0.5) for r in METRICS])
    assert boundaries(never) == (None, None, None)
    assert all("never reached 0.99" in never.reasons[k] for k in PHASE_RULES)


def test_a_run_stopped_mid_cleanup_has_no_cleanup_end():
    # stopped at 7000: test loss 0.0215 and restricted 0.0108 differ by more than 0.01 at the last record
    ph = phase_boundaries(joined_records(METRICS[:71], DENSE[:71]), grokking_events(METRICS))
    assert boundaries(ph)[:2] == (2000, 5400) and ph.cleanup_end is None
    assert "has not ended by the last progress record (step 7000)" in ph.reasons["cleanup_end"]
    # stopped at 7100, the first record where the condition holds: no later record confirms it
    ph = phase_boundaries(joined_records(METRICS[:72], DENSE[:72]), grokking_events(METRICS))
    assert ph.cleanup_end is None and "holds only from step 7100" in ph.reasons["cleanup_end"]
    assert "stopped mid-cleanup" in ph.reasons["cleanup_end"]


def test_missing_progress_measures_give_reasons():
    why = "no key frequencies: the model has no Fourier structure"
    bare = [
        {k: v for k, v in r.items() if k not in ("excluded_loss", "restricted_loss_test")}
        | {"null_reasons": {"excluded_loss": why, "restricted_loss_test": why}}
        for r in SPARSE
    ]
    ph = phase_boundaries(joined_records(METRICS, bare))
    assert ph.memorization_end is None and why in ph.reasons["memorization_end"]
    assert ph.cleanup_end is None and why in ph.reasons["cleanup_end"]
    assert ph.circuit_formation_end == 5400  # from the loss curves alone
    # weights saved too rarely: no progress record between the memorization step and the onset
    rare = [r for r in SPARSE if r["step"] in (0, 500, 6000, 8000, 10000)]
    ph = phase_boundaries(joined_records(METRICS, rare))
    assert ph.memorization_end is None and "between steps 1000 and 5400" in ph.reasons["memorization_end"]


def test_phases_of_a_real_grokked_run(analysed_run):
    run = Run.open(analysed_run)
    ph, events = run.analysis.phases, run.analysis.events
    progress = [to_json(p) for p in run.analysis.progress]
    metrics = run.metric_records()
    mem, onset, clean = boundaries(ph)
    assert None not in (mem, onset, clean), ph.reasons
    assert events.memorization_step <= mem <= onset <= clean <= ph.last_step
    # memorization_end: the excluded-loss argmin over the progress records in [memorization step, onset]
    window = {p["step"]: p["excluded_loss"] for p in progress if events.memorization_step <= p["step"] <= onset}
    assert min(window, key=window.get) == mem
    # circuit_formation_end: the first evaluation after the test-loss peak a factor e below it
    fitted = [r for r in metrics if r["step"] >= events.memorization_step and r["train_acc"] >= 0.99]
    peak = max(fitted, key=lambda r: r["test_loss"])
    below = [r["step"] for r in metrics if r["step"] > peak["step"] and r["test_loss"] <= peak["test_loss"] / math.e]
    assert onset == below[0] and onset <= events.grokking_step
    # cleanup_end: from it on test loss ~ restricted loss and W_L Gini on its plateau; not at the record before
    g0, g_last = progress[0]["gini_unembed"], progress[-1]["gini_unembed"]
    after = [p for p in progress if p["step"] >= onset]

    def holds(p: dict) -> bool:
        near = abs(p["test_loss"] - p["restricted_loss_test"]) <= CLEANUP_LOSS_TOL
        return near and abs(p["gini_unembed"] - g_last) <= GINI_PLATEAU_TOL * (g_last - g0)

    assert all(holds(p) for p in after if p["step"] >= clean)
    before = [p for p in after if p["step"] < clean]
    assert not before or not holds(before[-1])
    assert len([p for p in after if p["step"] > clean]) >= 1
    # during cleanup the W_L Gini rises and test loss falls; excluded loss is above its minimum
    change = next(c for c in ph.changes if c.phase == "cleanup")
    cleanup = change.measures
    # read at the first and last saved steps inside the phase (the onset is an evaluation step that
    # may have no saved weights)
    gini = cleanup["gini_unembed"]
    assert change.start <= gini["start_step"] < gini["end_step"] == change.end
    assert gini["end"] > gini["start"]
    assert cleanup["test_loss"]["end"] < cleanup["test_loss"]["start"] / 10


@pytest.mark.parametrize("name", PHASES)
def test_every_phase_has_a_rule_naming_its_measures(name):
    ends = {"memorization": "excluded loss", "circuit_formation": "test loss", "cleanup": "Gini of W_L"}
    assert ends[name] in PHASE_RULES[f"{name}_end"]
