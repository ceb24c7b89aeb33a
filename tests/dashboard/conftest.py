"""A runs directory for the dashboard tests: the shared analysed run, runs derived from it (some
deliberately damaged) and a small sweep directory. Built once per session; tests only read it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from groklab.runs import Run

APP = Path(__file__).resolve().parents[2] / "src" / "groklab" / "dashboard" / "app.py"


def _copy(src: Path, dst: Path, analysis: bool = True) -> Run:
    ignore = None if analysis else shutil.ignore_patterns("analysis")
    shutil.copytree(src, dst, ignore=ignore)
    return Run(dst)


def _truncate_metrics(run: Run, last_step: int) -> None:
    """Keep evaluations up to ``last_step`` and saved weights up to it (a run stopped early)."""
    run.truncate_metrics(last_step)
    run.truncate_snapshots(last_step)
    for step, path in run.checkpoints():
        if step > last_step:
            path.unlink()


def _set_config(run: Run, **task: object) -> None:
    cfg = run.config_dict()
    cfg["task"].update(task)
    run.config_path.write_text(yaml.safe_dump(cfg))


@pytest.fixture(scope="session")
def dash_runs(tmp_path_factory, analysed_run: Path) -> Path:
    """runs/ with:

    - ``grokked``: the analysed run (add, p 17, grokked);
    - ``early``: stopped at step 100 with status still ``running`` and no lock holder, no analysis;
    - ``sub_run``: op sub, stopped at step 140 (not grokked), completed, no analysis;
    - ``p13``: config says p = 13 but the checkpoints are p = 17 models;
    - ``torn``: a torn last metrics line, unreadable status.json and summary.json, a truncated
      final weights file;
    - ``broken_metrics``: a bad line in the middle of metrics.jsonl;
    - ``bad_config``: config.yaml that is not YAML;
    - ``sweep_wd/``: a sweep over optim.weight_decay with two runs and one failed point.
    """
    root = tmp_path_factory.mktemp("dash") / "runs"
    root.mkdir()
    _copy(analysed_run, root / "grokked")

    early = _copy(analysed_run, root / "early", analysis=False)
    _truncate_metrics(early, 100)
    early.write_status("running", 100)

    sub = _copy(analysed_run, root / "sub_run", analysis=False)
    _truncate_metrics(sub, 140)  # before the analysed run groks (test accuracy 0.90 there)
    _set_config(sub, op="sub")

    _set_config(_copy(analysed_run, root / "p13", analysis=False), p=13)

    torn = _copy(analysed_run, root / "torn")
    with open(torn.metrics_path, "a") as f:
        f.write('{"step": 1520, "train_lo')
    torn.status_path.write_text('{"state": "compl')
    (torn.analysis_dir / "summary.json").write_text('{"events": ')
    last = torn.weights_path(torn.steps[-1])  # the file read for the final step (its snapshot)
    last.write_bytes(last.read_bytes()[:200])

    broken = _copy(analysed_run, root / "broken_metrics", analysis=False)
    lines = broken.metrics_path.read_text().splitlines()
    lines[5] = "not json"
    broken.metrics_path.write_text("\n".join(lines) + "\n")

    bad = _copy(analysed_run, root / "bad_config", analysis=False)
    bad.config_path.write_text("task: [unclosed\n  p: : 3\n")

    sweep = root / "sweep_wd"
    points = [
        {"run_id": "weight_decay=1.0__aaaa1111", "values": {"optim.weight_decay": 1.0}, "error": None},
        {"run_id": "weight_decay=2.0__bbbb2222", "values": {"optim.weight_decay": 2.0}, "error": None},
        {"run_id": "weight_decay=3.0__cccc3333", "values": {"optim.weight_decay": 3.0}, "error": "worker died"},
    ]
    spec = {"name": "wd", "base": "debug", "grid": {"optim.weight_decay": [1.0, 2.0, 3.0]}}
    (sweep / "runs").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({"spec": spec, "points": points}, sort_keys=False))
    _copy(analysed_run, sweep / "runs" / points[0]["run_id"])
    slow = _copy(analysed_run, sweep / "runs" / points[1]["run_id"], analysis=False)
    _truncate_metrics(slow, 160)  # not grokked either (0.93)
    (sweep / "failures.json").write_text(json.dumps({points[2]["run_id"]: "worker died"}))
    return root


RUN_LABELS = [
    "bad_config", "broken_metrics", "early", "grokked", "p13", "sub_run",
    "sweep_wd/runs/weight_decay=1.0__aaaa1111", "sweep_wd/runs/weight_decay=2.0__bbbb2222", "torn",
]  # fmt: skip
