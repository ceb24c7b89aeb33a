import json

from groklab.records import to_json
from groklab.runs import Run


def _one_line_exit_2(r, fragment):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr and fragment in r.stderr


def test_analyze_writes_every_record(tmp_path, cli):
    out = tmp_path / "r"
    sets = [
        "--set",
        "task.train_frac=0.8",
        "--set",
        "optim.lr=5e-3",
        "--set",
        "optim.weight_decay=2.0",
        "--set",
        "train.steps=800",
        "--set",
        "seed=48",  # groks at ~200 steps; at seed 0 grokking hinges on float rounding (tests/conftest.py)
    ]
    assert cli("train", "--config", "debug", *sets, "--out", out).returncode == 0
    r = cli("analyze", out)
    assert r.returncode == 0, r.stderr
    run = Run(out)
    summary, progress = run.analysis.summary, run.analysis.progress
    keys = f"key frequencies {summary.key_frequencies} (from neuron clusters)" if summary.key_frequencies else ""
    assert f"basis Z_17 (identity); {keys}" in r.stdout  # the summary line names the basis
    assert [p.step for p in progress] == run.steps
    assert all(p.key_frequencies == summary.key_frequencies for p in progress)  # fixed over training
    assert {c.name for c in summary.criteria} >= {"generalization", "key_frequency_ablation", "control_ablation"}
    for name in ("fourier", "neurons", "ablation", "summary", "progress"):  # JSON on disk = the typed records
        assert run.read_record(name) == to_json(getattr(run.analysis, name))
    # the grokking step agrees with the metrics log by the DESIGN definition
    m = run.metric_records()
    g = summary.events.grokking_step
    assert g is not None and all(r["test_acc"] >= 0.95 for r in m if r["step"] >= g)
    assert [r for r in m if r["step"] < g][-1]["test_acc"] < 0.95


def test_analyze_bad_input(tmp_path, cli):
    _one_line_exit_2(cli("analyze", tmp_path / "missing"), "no such directory")
    (tmp_path / "plain").mkdir()
    _one_line_exit_2(cli("analyze", tmp_path / "plain"), "not a run directory")
    run = Run.create(tmp_path / "nockpt", "name: debug\ntask: {p: 17}\n", *([0], [1]))
    _one_line_exit_2(cli("analyze", run.path), "no checkpoint")


def test_analyze_skips_corrupt_checkpoint_and_running_run(tmp_path, cli):
    out = tmp_path / "r"
    assert (
        cli(
            "train",
            "--config",
            "debug",
            "--set",
            "train.steps=300",
            "--set",
            "train.checkpoint_every=100",
            "--out",
            out,
        ).returncode
        == 0
    )
    run = Run(out)
    bad = run.weights_path(100)  # the file analysis reads for step 100 (a snapshot where there is one)
    bad.write_bytes(bad.read_bytes()[:100])
    (out / "status.json").write_text(json.dumps({"state": "running", "step": 300, "error": None}))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r = cli("analyze", out)
    assert r.returncode == 0, r.stderr
    assert str(bad) in r.stderr and "still being written" in r.stderr
    steps = [p.step for p in run.analysis.progress]
    assert 100 not in steps and steps[-1] == 300
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing else touched
