"""The online stopping rule of `reproduce`: synthetic records with a known answer, and a real run on
which it stops past the offline cleanup_end of the analysis."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

from groklab.analysis.grokking import joined_records
from groklab.analysis.phases import phase_boundaries
from groklab.analysis.pipeline import analyze_run
from groklab.records import to_json
from groklab.runs import Run
from groklab.train import EvalResult, start_training
from groklab.train.stopping import CleanupRule, CleanupStop, cleanup_stop_step


def records(norm_flat_from: int = 2500, gap_flat_from: int = 2000, acc_dip: int | None = None) -> list[dict]:
    """Evaluations every 50 steps to 5000: test accuracy >= 0.99 from 1000 (below at ``acc_dip``); the
    weight norm falls 2% per evaluation until ``norm_flat_from``, the log-loss gap 0.5 nats per evaluation
    until ``gap_flat_from``; both flat after, while train and test loss keep falling together."""
    out = []
    for t in range(0, 5001, 50):
        gap = 0.5 * max(0, gap_flat_from - t) / 50 + 1.0
        train = math.exp(-t / 200)
        out.append(
            {
                "step": t,
                "test_acc": 0.5 if t < 1000 or t == acc_dip else 1.0,
                "train_loss": train,
                "test_loss": train * math.exp(gap),
                "weight_norm": 30.0 * 1.02 ** (max(0, norm_flat_from - t) / 50),
            }
        )
    return out


def test_the_rule_on_records_with_a_known_answer():
    # held from 1000: window W = max(5 * 50, 0.25 * 1000) = 250 steps; the weight norm is the later of the
    # two to flatten (2500), and a window that reaches before it has fallen 2% > 1%: settled from 2500 + 250,
    # stopped once settled for W more steps
    rule = CleanupRule()
    recs = records()
    assert [r["step"] for r in recs if rule.settled(recs[: recs.index(r) + 1])][0] == 2750
    assert cleanup_stop_step(recs) == 3000
    assert cleanup_stop_step(records(norm_flat_from=1500, gap_flat_from=3000)) == 3500  # the gap binds
    # test accuracy below 0.99 at 2600: held from 2650 again, W = 0.25 * 2650 = 662.5 -> settled from 3350,
    # stopped at the first evaluation >= 3350 + 662.5
    assert cleanup_stop_step(records(acc_dip=2600)) == 4050
    assert cleanup_stop_step(records(norm_flat_from=6000)) is None  # still shrinking: run to the budget
    assert cleanup_stop_step(recs[: 2950 // 50 + 1]) is None  # settled, not yet for W steps
    # a 5% tolerance admits windows reaching two evaluations (1.02^2) before 2500, not three: settled at 2650
    assert cleanup_stop_step(recs, CleanupRule(norm_tol=0.05)) == 2900
    assert cleanup_stop_step(recs, CleanupRule(norm_tol=0.2)) == 2500  # 1.02^5 < 1.2: the gap binds (2250)
    assert cleanup_stop_step(list(reversed(recs))) == 3000  # record order does not matter
    # a pause in the fall: settled over 2750-2900, then the gap falls again (0.5 nats per evaluation) until
    # 3400: the settled stretch restarts, settled again from 3400 + 250, stopped W later
    paused = [
        dict(r, test_loss=r["test_loss"] * math.exp(-0.5 * min(max(r["step"] - 2900, 0), 500) / 50)) for r in recs
    ]
    assert cleanup_stop_step(paused) == 3650 + 250


def test_settled_says_what_moved_in_the_window():
    recs = records()
    assert CleanupRule().settled(recs[: 2700 // 50 + 1]) is None
    found = CleanupRule().settled(recs[: 2750 // 50 + 1])
    assert found is not None and (found.held_since, found.width, found.norm_fall) == (1000, 250, 0.0)


def test_the_callback_stops_where_the_rule_does_saves_where_it_settles_and_reads_back_a_resumed_run():
    recs = records()
    fields = {"lr": 1e-3, "weight_norm_sq": 0.0, "elapsed_s": 0.0, "train_acc": 1.0}
    saved: list[int] = []
    # resumed at step 2000: the earlier evaluations come from metrics.jsonl, which already holds step 2000
    trainer = SimpleNamespace(run_dir=SimpleNamespace(metric_records=lambda: recs[:41]))
    trainer.save = lambda: saved.append(trainer.step)
    stop = CleanupStop()
    for r in recs[40:]:
        trainer.step = r["step"]
        if stop.on_eval(trainer, EvalResult(**(fields | r))):  # type: ignore[arg-type]
            break
    assert stop.step == trainer.step == 3000 and stop.settled_at == 2750 and saved == [2750]
    assert stop.reason is not None and "settled since step 2750" in stop.reason and "since step 1000" in stop.reason
    assert [r["step"] for r in stop.records or []] == list(range(0, 3001, 50))


def test_it_stops_past_the_offline_cleanup_end_of_a_real_run(tmp_path, analysed_run):
    # The session's debug p = 17 run that groks, trained again with the rule and a 3000-step budget
    # (its settling time varies between CPUs: 1,500 steps were enough on one, not on another), then
    # analysed: the run stops before its budget, and the analysis of the stopped run places
    # cleanup_end before the stop.
    full = Run.open(analysed_run)
    stop = CleanupStop()
    cfg = copy.deepcopy(full.config)
    cfg.train.steps = 3000
    run, result = start_training(cfg, tmp_path / "r", callbacks=[stop])
    assert result.state == "completed" and stop.step == result.step < 3000, stop.reason
    assert cleanup_stop_step(run.metric_records()) == result.step
    assert stop.settled_at is not None and stop.settled_at in run.steps  # weights where it first settled
    ph = analyze_run(run, n_draws=2).summary.phases
    assert ph.cleanup_end is not None, ph.reasons
    assert ph.memorization_end <= ph.circuit_formation_end <= ph.cleanup_end < result.step

    # The same configuration trained to 1500 steps without the rule (the session's analysed run) is the
    # same run step by step while both ran; its offline cleanup_end lies before the rule's stop too.
    def same(records):
        shared = min(1500, result.step)
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records if r["step"] <= shared]

    assert same(full.metric_records()) == same(run.metric_records())
    full_end = full.analysis.phases.cleanup_end
    assert full_end is not None and full_end < result.step
    again = phase_boundaries(joined_records(full.metric_records(), [to_json(p) for p in full.analysis.progress]))
    assert again.cleanup_end == full_end
