import json
import subprocess
import sys
import time

import pytest

from groklab.runs import Run

BAD_SETS = [
    ["model.widht=3"],
    ["optim.lr=fast"],
    ["task.op=pow"],
    ["model.arch=lstm"],
    ["task.p=1"],
    ["task.op=div", "task.p=15"],
    ["task.train_frac=0"],
    ["task.train_frac=1.0"],
    ["task.train_frac=0.001"],
    ["optim.lr=0"],
    ["train.steps=-5"],
    ["train.eval_every=0"],
    ["model.d_mlp=0"],
    ["model.n_heads=0"],
    ["seed"],
]


def assert_one_line_error(r, fragment=""):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and fragment in r.stderr


@pytest.mark.parametrize("sets", BAD_SETS, ids=lambda s: " ".join(s))
def test_bad_config_exits_2_and_leaves_nothing(tmp_path, cli, sets):
    args = [a for s in sets for a in ("--set", s)]
    r = cli("train", "--config", "debug", *args, "--runs-dir", tmp_path / "runs", "--out", tmp_path / "out")
    assert_one_line_error(r)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_unknown_preset(tmp_path, cli):
    assert_one_line_error(cli("train", "--config", "nandaa", "--out", tmp_path / "o"), "unknown preset")
    assert_one_line_error(cli("train", "--config", tmp_path / "missing.yaml", "--out", tmp_path / "o"), "not found")
    assert not (tmp_path / "o").exists()


def test_out_must_be_new_or_empty(tmp_path, cli):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    assert_one_line_error(cli("train", "--config", "debug", "--out", f), "is a file")
    d = tmp_path / "notes"
    d.mkdir()
    (d / "x.md").write_text("mine")
    assert_one_line_error(cli("train", "--config", "debug", "--out", d), "not empty")
    assert f.read_text() == "keep me" and [p.name for p in d.iterdir()] == ["x.md"]


def test_train_default_run_dir_then_list_and_existing_run_refused(tmp_path, cli):
    runs = tmp_path / "runs"
    r = cli("train", "--config", "debug", "--set", "train.steps=40", "--runs-dir", runs)
    assert r.returncode == 0, r.stderr
    (run_dir,) = runs.iterdir()
    assert run_dir.name.endswith("__debug__seed0")
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    assert_one_line_error(cli("train", "--config", "debug", "--out", run_dir), "already a run")
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before
    listing = cli("list", "--runs-dir", runs)
    assert listing.returncode == 0 and run_dir.name[:20] in listing.stdout and "completed" in listing.stdout


def test_resume_errors(tmp_path, cli):
    assert_one_line_error(cli("train", "--resume", tmp_path / "nope"), "no such directory")
    assert_one_line_error(cli("train", "--resume", tmp_path), "not a run directory")
    run = Run.create(tmp_path / "r", "name: debug\n", *([0], [1]))  # a run that never checkpointed
    assert_one_line_error(cli("train", "--resume", run.path), "no checkpoint")


def test_corrupt_checkpoint_named_and_fallback(tmp_path, cli):
    out = tmp_path / "r"
    args = ["--set", "train.steps=300", "--set", "train.checkpoint_every=100"]
    assert cli("train", "--config", "debug", *args, "--out", out).returncode == 0
    run = Run(out)
    newest = run.checkpoint_path(300)
    data = newest.read_bytes()
    newest.unlink()  # break the hard link with latest.pt, then write a truncated copy
    newest.write_bytes(data[: len(data) // 2])
    (out / "status.json").write_text(json.dumps({"state": "interrupted", "step": 300, "error": None}))
    r = cli("train", "--resume", out)
    assert r.returncode == 0, r.stderr
    assert "step_0000300.pt" in r.stderr and "corrupt" in r.stderr and "step_0000200.pt" in r.stderr
    assert run.status()["state"] == "completed" and run.metric_records()[-1]["step"] == 300
    for _, path in run.checkpoints():
        path.write_bytes(b"garbage")
    assert_one_line_error(cli("train", "--resume", out), "no valid checkpoint")


def test_locked_run_refused(tmp_path, cli):
    out = tmp_path / "r"
    assert cli("train", "--config", "debug", "--set", "train.steps=20", "--out", out).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from groklab.runs import Run\nimport time\nwith Run({str(out)!r}).lock():\n    print('held', flush=True)\n    time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = (out / "metrics.jsonl").read_text()
        assert_one_line_error(cli("train", "--resume", out), "locked by another live process")
        assert (out / "metrics.jsonl").read_text() == before
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert not Run(out).is_locked()


def test_bench_json(cli):
    r = cli("bench", "--config", "debug", "--steps", "20", "--warmup", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["fast"]["median_ms"] > 0 and out["full"]["median_ms"] > 0
    assert out["fast_path"] == "folded"  # the debug preset has one layer and no LayerNorm
    assert out["ratio"] == pytest.approx(out["fast"]["median_ms"] / out["full"]["median_ms"])
    assert_one_line_error(cli("bench", "--config", "debug", "--steps", "3"), "at least 20")


def test_list_missing_dir(tmp_path, cli):
    assert_one_line_error(cli("list", "--runs-dir", tmp_path / "none"), "no such directory")
