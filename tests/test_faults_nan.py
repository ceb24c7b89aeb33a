"""Numbers that cannot be trusted are flagged: a model whose unembedding holds an infinite weight
gives NaN/inf logits, losses and spectra at its last checkpoint; the analysis records each such
measure as null (never as a number) with the reason in ``summary.untrusted``, and the report, the
dashboard's data layer and the command line say so."""

from __future__ import annotations

import json
import math

import pytest

from groklab.analysis.pipeline import analyze_run
from groklab.config import load_config
from groklab.files import load_checkpoint
from groklab.records import finite_json
from groklab.runs import Run
from groklab.train import start_training


def test_finite_json_nulls_each_non_finite_number_with_its_place_and_reason():
    from groklab.records import FinalMetrics

    rec = {"a": [1.0, math.nan, 2.0], "b": {3: -math.inf}, "c": FinalMetrics(7, math.inf, 0.5, None, 1.0)}
    clean, flags = finite_json(rec, "x")
    assert clean == {"a": [1.0, None, 2.0], "b": {"3": None}, "c": {"step": 7, "train_loss": None,
                     "train_acc": 0.5, "test_loss": None, "test_acc": 1.0}}  # fmt: skip
    assert flags == {"x.a[1]": "NaN", "x.b.3": "-inf", "x.c.train_loss": "+inf"}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Run:
    run, result = start_training(load_config("debug", ["train.steps=100"]), tmp_path_factory.mktemp("nan") / "run")
    assert result.state == "completed"
    state = load_checkpoint(run.checkpoint_path(100))
    state["model"]["unembed.W_U"][0, 0] = math.inf  # every logit of class 0 is +-inf or NaN
    run.save_checkpoint(100, state)
    analysis = analyze_run(run)
    run.write_analysis(analysis)
    return run


def test_analysis_records_null_with_the_reason(broken):
    summary = Run(broken.path).analysis.summary
    last = len(broken.steps) - 1  # progress row of the broken checkpoint
    assert summary.untrusted[f"progress[{last}].train_loss"] == "NaN"
    assert summary.untrusted[f"progress[{last}].weight_norm"] == "+inf"
    assert all(not k.startswith(f"progress[{i}].") for k in summary.untrusted for i in range(last))  # earlier fine
    lines = (broken.analysis_dir / "progress.jsonl").read_text().splitlines()
    row = json.loads(lines[last])
    assert row["train_loss"] is None and row["weight_norm"] is None
    for name in ("summary", "fourier", "neurons", "ablation"):  # strict JSON: no NaN/Infinity tokens
        json.loads((broken.analysis_dir / f"{name}.json").read_text(), parse_constant=pytest.fail)
    assert any(w.startswith(f"untrusted numbers: {len(summary.untrusted)} measure(s)") for w in summary.warnings)


def test_report_and_dashboard_show_the_flag(broken):
    from groklab.dashboard import data
    from groklab.report import run_report

    Run(broken.path).write_figure_index({"figures": [], "skipped": [], "failed": []})
    html = run_report(Run(broken.path))
    assert "untrusted numbers:" in html and "recorded as null" in html
    assert data.summary(Run(broken.path)).untrusted == Run(broken.path).analysis.summary.untrusted
