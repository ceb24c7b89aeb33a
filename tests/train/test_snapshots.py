"""Weights-only snapshots: the schedule (``train.snapshot_every``), what training writes, resume, analysis."""

import math

import pytest
import torch

from groklab.analysis import pipeline
from groklab.analysis.pipeline import analyze_run
from groklab.config import ConfigError, load_config
from groklab.runs import load_checkpoint
from groklab.train import resume_training, start_training
from groklab.train.checkpoint import SNAPSHOT_LOG_LOSS_CHANGE, SnapshotSchedule, snapshot_steps


def rec(step, train_loss=1.0, test_loss=1.0, train_acc=1.0, test_acc=0.5):
    return {
        "step": step,
        "train_loss": train_loss,
        "test_loss": test_loss,
        "train_acc": train_acc,
        "test_acc": test_acc,
    }


def flat(steps):
    return [rec(s) for s in steps]


# -- the schedule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("every", [None, 0])
def test_no_snapshots_when_disabled(every):
    moving = [rec(s, train_loss=10.0**-s) for s in range(0, 50, 10)]
    assert snapshot_steps(every, 40, moving) == []


def test_quiet_metrics_give_multiples_of_every_and_the_last_step():
    assert snapshot_steps(100, 300, flat(range(0, 301, 50))) == [0, 100, 200, 300]
    # the last step gets one even off the grid; steps without an evaluation count too
    assert snapshot_steps(100, 250, flat([0, 70, 140, 210, 250])) == [0, 100, 200, 250]


def test_a_loss_that_moves_adds_every_evaluation_until_it_settles():
    # train loss falls by a factor 2 (|d ln| = 0.69 > 0.5) per evaluation up to step 50, then holds
    records = [rec(s, train_loss=2.0 ** -min(s, 50) / 10) for s in range(0, 201, 10)]
    assert snapshot_steps(100, 200, records) == [0, 10, 20, 30, 40, 50, 100, 200]
    # the test loss counts the same way, upwards as well as downwards
    records = [rec(s, test_loss=2.0 ** min(s, 50) / 10) for s in range(0, 201, 10)]
    assert snapshot_steps(100, 200, records) == [0, 10, 20, 30, 40, 50, 100, 200]


def test_small_loss_changes_add_up_since_the_last_snapshot():
    # ln(test loss) moves by 0.6 of the threshold per evaluation: every second one passes it
    d = 0.6 * SNAPSHOT_LOG_LOSS_CHANGE
    records = [rec(s, test_loss=math.exp(d * s)) for s in range(0, 8)]
    assert snapshot_steps(1000, 7, records) == [0, 2, 4, 6, 7]
    assert SNAPSHOT_LOG_LOSS_CHANGE == 0.1  # the documented value


def test_crossing_an_accuracy_band_adds_a_snapshot():
    accs = [0.02, 0.08, 0.099, 0.10, 0.15, 0.199, 0.21, 0.95, 0.99, 1.0]
    records = [rec(10 * i, test_acc=a) for i, a in enumerate(accs)]
    # bands are compared with the last snapshot's: 0.10 and 0.21 cross; 0.95 and 1.0 (its own band) too
    assert snapshot_steps(1000, 100, records) == [0, 30, 60, 70, 90, 100]
    records = [rec(10 * i, train_acc=a) for i, a in enumerate(accs)]
    assert snapshot_steps(1000, 100, records) == [0, 30, 60, 70, 90, 100]


def test_a_non_finite_loss_counts_as_moved():
    records = [rec(0), rec(10), rec(20, test_loss=math.nan), rec(30, test_loss=math.inf)]
    assert snapshot_steps(1000, 40, records) == [0, 20, 30, 40]


def test_replay_continues_as_if_never_stopped():
    records = [rec(s, train_loss=1.2**-s, test_acc=min(1.0, s / 40)) for s in range(0, 61, 2)]
    whole = snapshot_steps(10, 60, records)
    for k in (1, 7, 15, 30):
        resumed = SnapshotSchedule.replay(10, records[:k])
        start, by_step = records[k - 1]["step"] + 1, {r["step"]: r for r in records}
        tail = [s for s in range(start, 61) if resumed.due(s, by_step.get(s), last=s == 60)]
        assert [s for s in whole if s < start] + tail == whole


def test_snapshot_every_must_be_non_negative_or_null():
    assert load_config("nanda").train.snapshot_every == 200
    assert load_config("nanda", ["train.snapshot_every=null"]).train.snapshot_every is None
    assert load_config("nanda", ["train.snapshot_every=0"]).train.snapshot_every == 0
    assert load_config("debug").train.snapshot_every == 0  # the test preset writes none unless asked
    with pytest.raises(ConfigError, match="train.snapshot_every"):
        load_config("nanda", ["train.snapshot_every=-5"])


def test_nanda_schedule_without_movement():
    # the floor of the default schedule for the canonical preset: every 200 steps over 40,000 steps
    cfg = load_config("nanda").train
    quiet = flat(range(0, cfg.steps + 1, cfg.eval_every))
    steps = snapshot_steps(cfg.snapshot_every, cfg.steps, quiet)
    assert len(steps) == 201 and steps[:3] == [0, 200, 400] and steps[-1] == cfg.steps


# -- training ------------------------------------------------------------------------------------------

OVER = ["train.steps=90", "train.eval_every=10", "train.checkpoint_every=30", "train.snapshot_every=25"]


def _snapshot_bytes(run):
    return {step: path.read_bytes() for step, path in run.snapshots()}


def test_training_writes_the_scheduled_snapshots(tmp_path):
    run, result = start_training(load_config("debug", OVER), tmp_path / "r")
    assert result.state == "completed"
    steps = [s for s, _ in run.snapshots()]
    assert steps == snapshot_steps(25, 90, run.metric_records())
    assert {0, 25, 50, 75, 90} <= set(steps)
    assert all(s % 25 == 0 or s % 10 == 0 for s in steps)  # the rest are evaluations
    assert run.steps == sorted(set(steps) | set(run.checkpoint_steps()))
    # weights only, loaded with weights_only=True, equal to the checkpoint of the same step
    shared = sorted(set(steps) & set(run.checkpoint_steps()))
    assert 0 in shared and 90 in shared
    for step in shared:
        snap = torch.load(run.snapshot_path(step), weights_only=True)
        assert set(snap) == {"step", "model"} and snap["step"] == step
        ckpt = load_checkpoint(run.checkpoint_path(step))["model"]
        assert snap["model"].keys() == ckpt.keys() and all(torch.equal(snap["model"][k], ckpt[k]) for k in ckpt)


@pytest.mark.parametrize("every", ["0", "null"])
def test_no_snapshot_directory_when_disabled(tmp_path, every):
    run, _ = start_training(load_config("debug", [*OVER, f"train.snapshot_every={every}"]), tmp_path / "r")
    assert not run.snapshot_dir.exists() and run.steps == run.checkpoint_steps()


@pytest.mark.parametrize("batch", ["null", "32"])
def test_resume_rewrites_snapshots_bit_identically(tmp_path, batch):
    over = [*OVER, f"train.batch_size={batch}"]
    straight, _ = start_training(load_config("debug", over), tmp_path / "straight")
    run, _ = start_training(load_config("debug", over), tmp_path / "resumed")
    # as if killed after the checkpoint at step 30, with later snapshots on disk: some gone, one
    # overwritten with other weights, a temporary file of a write cut short
    for step, path in run.checkpoints():
        if step > 30:
            path.unlink()
    later = [(s, p) for s, p in run.snapshots() if s > 30]
    assert len(later) >= 3
    later[0][1].unlink()
    run.save_snapshot(later[1][0], {k: v + 1 for k, v in run.load_state(0).items()})
    (run.snapshot_dir / ".step_0000099.pt.abc.tmp").write_bytes(b"torn")
    run.truncate_metrics(47)
    resume_training(run.path)
    assert _snapshot_bytes(run) == _snapshot_bytes(straight)
    assert [p.name for p in run.snapshot_dir.iterdir() if p.name.startswith(".")] == []
    assert run.steps == straight.steps


def test_analysis_has_one_progress_record_per_distinct_step(tmp_path):
    run, _ = start_training(load_config("debug", OVER), tmp_path / "r")
    snaps, ckpts = {s for s, _ in run.snapshots()}, set(run.checkpoint_steps())
    assert snaps & ckpts and snaps - ckpts and ckpts - snaps  # both kinds, and steps that have both
    analysis = analyze_run(run, n_draws=2)
    assert [p.step for p in analysis.progress] == sorted(snaps | ckpts) == run.steps
    assert [s.step for s in analysis.fourier.over_checkpoints] == run.steps
    assert analysis.summary.n_checkpoints == len(run.steps)


def test_spectra_series_gets_coefficients_at_evenly_spaced_steps(tmp_path, monkeypatch):
    steps = list(range(0, 1000, 10))
    chosen = sorted(pipeline._coefficient_steps(steps, 64))
    assert len(chosen) == 64 and chosen[0] == 0 and chosen[-1] == 990
    assert max(b - a for a, b in zip(chosen, chosen[1:], strict=False)) == 20
    assert pipeline._coefficient_steps(steps[:64], 64) == set(steps[:64])

    run, _ = start_training(load_config("debug", OVER), tmp_path / "r")
    full = analyze_run(run, n_draws=2).fourier.over_checkpoints
    monkeypatch.setattr(pipeline, "SERIES_COEFFICIENT_STEPS", 5)
    part = analyze_run(run, n_draws=2).fourier.over_checkpoints
    have = [s.step for s in part if s.cos_coefficients is not None]
    assert len(have) == 5 and have[0] == run.steps[0] and have[-1] == run.steps[-1]
    # the spectra everywhere, and the same numbers where both have them
    for a, b in zip(full, part, strict=True):
        assert (a.step, a.embedding_norms, a.unembed_norms) == (b.step, b.embedding_norms, b.unembed_norms)
        assert b.cos_coefficients is None or b.cos_coefficients == a.cos_coefficients
