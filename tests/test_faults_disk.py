"""A disk that fills up (ENOSPC injected at the one write path, see ``faults_helpers``): every
command stops with one line naming the cause and the file, exits 1, leaves no half-written file
under a final name and no temporary file, keeps everything written before, and carries on once
space is back (training resumes bit for bit)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from faults_helpers import FullDisk, leftovers
from groklab import files
from groklab.cli import app
from groklab.config import load_config
from groklab.files import load_checkpoint
from groklab.runs import Run
from groklab.train import start_training

STEPS = ["train.steps=300"]  # debug: checkpoints at 0 1 2 5 10 20 50 100 200 300, evaluations every 20
ENOSPC = "No space left on device"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


def assert_failure_line(result, *fragments: str) -> str:
    """Exit 1, one line on stderr starting ``error:`` with the fragments, no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    return lines[0]


def metrics_without_time(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in Run(run).metric_records()]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "run"
    _, result = start_training(load_config("debug", STEPS), out)
    assert result.state == "completed"
    return out


def check_resumes_exactly(run: Path, undisturbed: Path) -> None:
    result = invoke("train", "--resume", run, "-q")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert Run(run).status()["state"] == "completed"
    final = load_checkpoint(Run(run).checkpoint_path(300))["model"]
    clean = load_checkpoint(Run(undisturbed).checkpoint_path(300))["model"]
    assert final.keys() == clean.keys() and all(torch.equal(final[k], clean[k]) for k in final)
    assert metrics_without_time(run) == metrics_without_time(undisturbed)


@pytest.mark.parametrize("free", [1000, 0], ids=["status-fits", "nothing-fits"])
def test_training_disk_full_fails_cleanly_then_resumes_bit_exactly(tmp_path, monkeypatch, undisturbed, free):
    disk = FullDisk("step_0000200.pt", free=free)  # the step-200 checkpoint meets a full disk
    monkeypatch.setattr(files, "_write", disk.write)
    run = tmp_path / "run"
    result = invoke("train", "--config", "debug", "--set", STEPS[0], "--out", run, "-q")
    assert_failure_line(result, f"error: {ENOSPC}: ", str(run / "checkpoints" / "step_0000200.pt"))
    assert disk.faults >= 1

    status = Run(run).status()
    if free:  # status.json fits in what is left: failed, with the reason
        assert status["state"] == "failed" and status["step"] == 200
        assert status["error"] == f"{ENOSPC}: {run / 'checkpoints' / 'step_0000200.pt'}"
    else:  # nothing fits: status.json keeps "running", and the lock died with the writer
        assert status["state"] == "running" and not Run(run).is_locked()
    assert Run(run).checkpoint_steps() == [0, 1, 2, 5, 10, 20, 50, 100]
    for _, path in Run(run).checkpoints():
        load_checkpoint(path)  # every earlier checkpoint loads
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 100
    assert leftovers(run) == []
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(0, 201, 20))  # whole lines only

    monkeypatch.undo()  # space is back
    check_resumes_exactly(run, undisturbed)


def test_metrics_line_that_does_not_fit_is_cut_back(tmp_path, monkeypatch, undisturbed):
    """The evaluation record of step 140 meets the full disk: metrics.jsonl keeps whole lines."""
    run = tmp_path / "run"
    disk = FullDisk("metrics.jsonl", free=0)
    state = {"n": 0}
    real = disk.write

    def write(f, raw):  # the disk fills at the 8th evaluation record (step 140)
        state["n"] += "metrics.jsonl" in str(f.name if not isinstance(f.name, int) else "")
        disk.full = disk.full or state["n"] >= 8
        if not disk.full:
            f.write(raw)
            return
        real(f, raw)

    monkeypatch.setattr(files, "_write", write)
    result = invoke("train", "--config", "debug", "--set", STEPS[0], "--out", run, "-q")
    assert_failure_line(result, f"error: {ENOSPC}: {run / 'metrics.jsonl'}")
    text = (run / "metrics.jsonl").read_text()
    assert text.endswith("\n") and [json.loads(x)["step"] for x in text.splitlines()] == list(range(0, 121, 20))
    assert disk.faults == 2 and leftovers(run) == []  # the record, then status.json
    monkeypatch.undo()
    check_resumes_exactly(run, undisturbed)


@pytest.fixture
def analysed_copy(tmp_path, analysed_run) -> Path:
    out = tmp_path / "run"
    shutil.copytree(analysed_run, out)
    return out


def analysis_bytes(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "analysis").iterdir()) if p.name != ".lock"}


def test_analyze_disk_full_keeps_the_previous_analysis_whole(analysed_copy, monkeypatch):
    before = analysis_bytes(analysed_copy)
    disk = FullDisk("neurons.json")
    monkeypatch.setattr(files, "_write", disk.write)
    result = invoke("analyze", analysed_copy, "-q")
    assert_failure_line(result, f"error: {ENOSPC}: {analysed_copy / 'analysis' / 'neurons.json'}")
    assert analysis_bytes(analysed_copy) == before  # all files or none: the old analysis, whole
    assert leftovers(analysed_copy) == [] and disk.faults == 1
    monkeypatch.undo()
    assert invoke("analyze", analysed_copy, "-q").exit_code == 0
    assert Run(analysed_copy).analysis.summary.analysed_step == 1500


def test_figures_disk_full_leaves_only_whole_figures(analysed_copy, monkeypatch):
    from groklab import plots

    real, drawn = plots.save, []

    def save(obj, path, kind):  # the third figure finds the disk full half-way through its file
        real(obj, path, kind)
        if len(drawn) == 2:
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
            raise OSError(28, ENOSPC)
        drawn.append(Path(path).name)

    monkeypatch.setattr(plots, "save", save)
    result = invoke("figures", analysed_copy, "-q")
    assert_failure_line(result, f"error: {ENOSPC}")
    pngs = sorted((analysed_copy / "figures").glob("*.png"))
    assert len(pngs) == 2 and leftovers(analysed_copy) == []
    assert all(p.read_bytes().endswith(b"IEND\xaeB`\x82") for p in pngs)  # whole PNG files
    assert not (analysed_copy / "figures" / "index.json").exists()


def test_report_disk_full_keeps_the_old_report(analysed_copy, monkeypatch):
    Run(analysed_copy).write_figure_index({"figures": [], "skipped": [], "failed": []})
    (analysed_copy / "report.html").write_text("<p>the previous report</p>")
    monkeypatch.setattr(files, "_write", FullDisk("report.html").write)
    result = invoke("report", analysed_copy, "-q")
    assert_failure_line(result, f"error: {ENOSPC}: {analysed_copy / 'report.html'}")
    assert (analysed_copy / "report.html").read_text() == "<p>the previous report</p>"
    assert leftovers(analysed_copy) == []
    monkeypatch.undo()
    assert invoke("report", analysed_copy, "-q").exit_code == 0
    assert "Key numbers" in (analysed_copy / "report.html").read_text()


def test_export_disk_full_writes_no_bundle(analysed_copy, tmp_path, monkeypatch):
    real, calls = tarfile.TarFile.addfile, []

    def addfile(self, info, fileobj=None):  # the archive meets a full disk at its fourth member
        calls.append(info.name)
        if len(calls) == 4:
            raise OSError(28, ENOSPC)
        return real(self, info, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", addfile)
    out = tmp_path / "bundles" / "run.tar.gz"
    assert_failure_line(invoke("export", analysed_copy, out), f"error: {ENOSPC}")
    assert not out.exists() and list(out.parent.iterdir()) == []
    monkeypatch.undo()
    assert invoke("export", analysed_copy, out).exit_code == 0
    assert Run.open(analysed_copy).steps[-1] in __import__("groklab").load_run(out).steps


class InlineExecutor:
    """Runs each point in this process when it is submitted (so the injected disk reaches it)."""

    capacity, running = 1, 0

    def __init__(self) -> None:
        self.done: list = []

    def submit(self, task) -> None:
        from groklab.sweeps.worker import execute_point

        self.done.append((task, execute_point(task)))

    def poll(self, timeout: float) -> list:
        done, self.done = self.done, []
        return done

    def interrupt(self) -> None:
        pass

    def close(self, force: bool = False) -> None:
        pass


def test_sweep_point_disk_full_is_recorded_and_the_others_run(tmp_path, monkeypatch):
    from groklab.sweeps import expand, parse_spec
    from groklab.sweeps.runner import run_sweep

    spec = parse_spec({"base": "debug", "set": {"train.steps": 40}, "grid": {"seed": [0, 1, 2]}}, default_name="d")
    points = expand(spec)
    victim = points[1].run_id
    disk = FullDisk(f"{victim}/checkpoints/.step_0000020.pt", free=1000, once=True)  # its temporary file
    monkeypatch.setattr(files, "_write", disk.write)
    outcome = run_sweep(spec, points, tmp_path / "sweep", InlineExecutor(), threads=1, figure_every_s=1e9)
    assert outcome.counts == {"completed": 2, "failed": 1} and disk.faults == 1
    row = next(r for r in outcome.rows if r["run_id"] == victim)
    failed_ckpt = tmp_path / "sweep" / "runs" / victim / "checkpoints" / "step_0000020.pt"
    assert row["state"] == "failed" and row["error"] == f"{ENOSPC}: {failed_ckpt}"
    run = Run(tmp_path / "sweep" / "runs" / victim)
    assert run.checkpoint_steps() == [0, 1, 2, 5, 10] and leftovers(tmp_path / "sweep") == []
    monkeypatch.undo()
    again = run_sweep(spec, points, tmp_path / "sweep", InlineExecutor(), threads=1, retry_failed=True)
    assert again.counts == {"completed": 3} and run.status()["state"] == "completed"
