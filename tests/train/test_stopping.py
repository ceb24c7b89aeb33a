"""The online stopping rule of `reproduce`: synthetic records with a known answer, and a real run on
which it stops past the offline cleanup_end of the analysis."""

from __future__ import annotations

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
    # two to flatten (2500), and a window that reaches before it has fallen 2% > 1%: stop at 2500 + 250
    assert cleanup_stop_step(records()) == 2750
    assert cleanup_stop_step(records(norm_flat_from=1500, gap_flat_from=3000)) == 3250  # the gap binds
    # test accuracy below 0.99 at 2600: held from 2650 again, W = 0.25 * 2650 = 662.5 -> first t >= 3312.5
    assert cleanup_stop_step(records(acc_dip=2600)) == 3350
    assert cleanup_stop_step(records(norm_flat_from=6000)) is None  # still shrinking: run to the budget
    assert cleanup_stop_step(records()[:50]) is None  # not yet held long enough
    # a 5% tolerance admits windows reaching two evaluations (1.02^2) before 2500, not three: 2400 + 250
    assert cleanup_stop_step(records(), CleanupRule(norm_tol=0.05)) == 2650
    assert cleanup_stop_step(records(), CleanupRule(norm_tol=0.2)) == 2250  # 1.02^5 < 1.2: the gap binds
    assert cleanup_stop_step(list(reversed(records()))) == 2750  # record order does not matter


def test_the_rule_says_why_it_stopped():
    recs = records()
    assert CleanupRule().check(recs[: 2750 // 50]) is None
    why = CleanupRule().check(recs[: 2750 // 50 + 1])
    assert why is not None and "since step 1000" in why and "last 250 steps" in why and "weight norm 0.00%" in why


def test_the_callback_stops_where_the_rule_does_and_reads_back_a_resumed_run():
    recs = records()
    fields = {"lr": 1e-3, "weight_norm_sq": 0.0, "elapsed_s": 0.0, "train_acc": 1.0}
    # resumed at step 2000: the earlier evaluations come from metrics.jsonl, which already holds step 2000
    trainer = SimpleNamespace(run_dir=SimpleNamespace(metric_records=lambda: recs[:41]))
    stop = CleanupStop()
    stopped_at = next(r["step"] for r in recs[40:] if stop.on_eval(trainer, EvalResult(**(fields | r))))  # type: ignore[arg-type]
    assert stopped_at == stop.step == 2750 and stop.reason
    assert [r["step"] for r in stop.records or []] == list(range(0, 2751, 50))


def test_it_stops_past_the_offline_cleanup_end_of_a_real_run(tmp_path, analysed_run):
    # The session's debug p = 17 run that groks (budget 1500 steps), trained again with the rule, then
    # analysed: the run
    # stops before its budget, and the analysis of the stopped run places cleanup_end before the stop.
    full = Run.open(analysed_run)
    stop = CleanupStop()
    run, result = start_training(full.config, tmp_path / "r", callbacks=[stop])
    assert result.state == "completed" and stop.step == result.step < 1500, stop.reason
    assert cleanup_stop_step(run.metric_records()) == result.step
    ph = analyze_run(run, n_draws=2).summary.phases
    assert ph.cleanup_end is not None, ph.reasons
    assert ph.memorization_end <= ph.circuit_formation_end <= ph.cleanup_end < result.step
    # The same configuration trained to its budget without the rule (the session's analysed run): the
    # offline cleanup_end of the full run, which sees how the curves go on, lies before the rule's stop too.
    assert cleanup_stop_step(full.metric_records()) == result.step  # the same run, step by step
    full_end = full.analysis.phases.cleanup_end
    assert full_end is not None and full_end < result.step
    again = phase_boundaries(joined_records(full.metric_records(), [to_json(p) for p in full.analysis.progress]))
    assert again.cleanup_end == full_end
