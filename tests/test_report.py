"""`groklab figures` / `groklab report` end to end on the shared grokked run, the report page's
self-containment and content, and the commands' bad input."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from groklab.conventions import event_rule
from groklab.plots import FIGURES, GROUPS, specs
from groklab.records import (
    AblationSummary,
    Agreement,
    BasisRecord,
    Criterion,
    FinalMetrics,
    GrokkingEvents,
    Phases,
    RunInfo,
    Summary,
)
from groklab.report import ReportFigure, render_report
from groklab.runs import load_run

GROKLAB = [sys.executable, "-m", "groklab"]
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF8"}


def run_cli(*args) -> subprocess.CompletedProcess:
    """As the `cli` fixture, for the module-scoped fixture below (a function-scoped one can't be used there)."""
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*GROKLAB, *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def reported_run(analysed_run, tmp_path_factory) -> tuple[Path, object]:
    """A copy of the grokked run without its analysis, then `groklab report` on it: the command
    must analyse, draw every figure and write the page (one subprocess for the whole chain)."""
    path = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(analysed_run, path)
    shutil.rmtree(path / "analysis")
    res = run_cli("report", path)
    assert res.returncode == 0, res.stderr
    return path, res


def test_report_runs_analysis_and_figures_first_and_says_so(reported_run):
    path, res = reported_run
    assert "not analysed yet; running `groklab analyze` first" in res.stderr
    assert "drawing them first" in res.stderr
    assert f"report: {path / 'report.html'}" in res.stdout
    assert (path / "analysis" / "summary.json").is_file()


def test_every_figure_file_is_written(reported_run):
    path, _ = reported_run
    index = json.loads((path / "figures" / "index.json").read_text())
    # a transformer on add has data for every figure but the opt-in LLC (`groklab llc` was not run)
    assert index["failed"] == [] and [s["name"] for s in index["skipped"]] == ["llc_over_training"]
    assert "groklab llc" in index["skipped"][0]["reason"]
    drawn = {f["name"]: f for f in index["figures"]}
    assert set(drawn) == set(FIGURES) - {"llc_over_training"}
    for spec in specs():
        if spec.name not in drawn:
            continue
        f = path / "figures" / spec.filename
        data = f.read_bytes()
        assert len(data) > 1000 and data.startswith(MAGIC[spec.kind]), spec.filename
        assert drawn[spec.name]["caption"] == spec.caption and drawn[spec.name]["group"] == spec.group
    kinds = [f["kind"] for f in index["figures"]]
    assert kinds.count("png") >= 25 and kinds.count("gif") >= 2
    assert not [p.name for p in (path / "figures").iterdir() if p.name.startswith(".")]  # no temporary left


def test_report_is_self_contained(reported_run):
    path, _ = reported_run
    page = (path / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    srcs = re.findall(r"""src=['"]([^'"]+)['"]""", page)
    assert srcs and all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in srcs)
    embedded = [base64.b64decode(s.split(",", 1)[1]) for s in srcs]
    index = json.loads((path / "figures" / "index.json").read_text())
    assert len(embedded) == len(index["figures"])
    for f, data in zip(index["figures"], embedded, strict=True):
        assert data == (path / "figures" / f["file"]).read_bytes(), f["name"]
        assert f["caption"].replace("'", "&#x27;") in page
    assert (path / "report.html").stat().st_size < 15e6


def test_report_has_key_numbers_config_and_criteria(reported_run):
    path, _ = reported_run
    page = (path / "report.html").read_text()
    summary = load_run(path).analysis.summary
    ev = summary.events
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    for name in ("memorization_step", "grokking_step", "delay"):  # each event with its rule and value
        label = ("delay in steps" if name == "delay" else name.replace("_", " ")) + f" ({event_rule(name)})"
        assert re.search(rf"{re.escape(label)}\s*{getattr(ev, name)}\s", text), name
    assert "first evaluation with test accuracy >= 0.95, held to the end" in text
    assert str(summary.key_frequencies) in text
    assert re.search(r"Fourier basis \(frequencies k of Z_n\)\s*Z_17 \(identity\)\s", text)
    assert summary.key_frequencies and f"{summary.key_frequencies} from neuron clusters" in " ".join(text.split())
    counts = ", ".join(f"{k}: {n}" for k, n in summary.key_frequency_counts.items())
    assert re.search(rf"by neuron clusters \(k: neurons\)\s*{re.escape(counts)}\s", text)
    drop = summary.ablation.key_frequency_acc_drop
    assert f"{drop:.3g}" in text
    for c in summary.criteria:
        row = re.search(rf"<tr><td>{c.name}</td>.*?</tr>", page)
        assert row, c.name
        assert ("pass" if c.passed else "fail") in row.group(0)
    ph = summary.phases  # each phase from its start to its end, or to why the end is unknown
    end = ph.circuit_formation_end
    end = end if end is not None else f"n/a: {ph.reasons['circuit_formation_end']}"
    assert f"circuit formation {ph.memorization_end} to {end}" in " ".join(text.split())
    assert "train_frac" in text and "weight_decay" in text  # the resolved config
    for label in GROUPS.values():
        assert label in text


def test_report_again_reuses_current_figures(reported_run, cli):
    path, _ = reported_run
    before = (path / "figures" / "index.json").stat().st_mtime
    res = cli("report", path)
    assert res.returncode == 0, res.stderr
    assert "drawing" not in res.stderr and (path / "figures" / "index.json").stat().st_mtime == before


def test_sweep_directory_gets_the_sweep_page(reported_run, tmp_path, cli):
    run, _ = reported_run
    sweep = tmp_path / "sweep"
    (sweep / "runs").mkdir(parents=True)
    shutil.copytree(run, sweep / "runs" / "seed0")
    (sweep / "sweep.yaml").write_text(
        "spec: {name: tiny, base: debug, grid: {seed: [0, 1]}}\n"
        "points:\n- {run_id: seed0, values: {seed: 0}, error: null}\n- {run_id: seed1, values: {seed: 1}, error: null}\n"
    )
    res = cli("report", sweep)
    assert res.returncode == 0, res.stderr
    page = (sweep / "report.html").read_text()
    assert "sweep tiny" in page and "seed0" in page and "seed1" in page


def test_bad_input_is_one_line_and_exit_2(tmp_path, cli):
    res = cli("figures", tmp_path / "missing")
    assert res.returncode == 2 and "no such directory" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    res = cli("report", tmp_path)  # a directory that is neither a run, a sweep nor an ensemble
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "neither a run directory (no config.yaml), a sweep directory (no sweep.yaml) nor an ensemble" in res.stderr


def test_figures_on_a_run_without_checkpoints_says_why(analysed_run, tmp_path, cli):
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(analysed_run / "config.yaml", run / "config.yaml")
    res = cli("figures", run)
    assert res.returncode == 2 and "no checkpoint or snapshot to analyse" in res.stderr
    assert "Traceback" not in res.stderr


def never_grokked_summary() -> Summary:
    """A run that memorized and never grokked: nulls with their reasons."""
    never = "test accuracy never reached 0.95 (best 0.31 at step 300)"
    no_keys = "no neuron cluster has at least 2 members: the model shows no Fourier structure in its neurons"
    return Summary(
        run="r", config=RunInfo("x", "mul", 7, 0.3, 0), basis=BasisRecord("discrete_log", 6, 3), state="completed",
        analysed_step=300, n_checkpoints=4,
        events=GrokkingEvents(40, None, None, 300, 10, reasons={"grokking_step": never, "delay": "no grokking step"}),
        phases=Phases(0, None, None, None, 300, rules={}, reasons={"memorization_end": "no grokking step"}),
        key_frequencies=[], key_frequency_counts={}, key_frequencies_reason=no_keys,
        embedding_key_frequencies=[], key_frequency_agreement=Agreement([], [], [], 1.0, True),
        final=FinalMetrics(300, 0.01, 1.0, 2.5, 0.31),
        criteria=[Criterion("generalization", 0.31, 0.95, ">=", False, "never reached")], all_passed=False,
        ablation=AblationSummary(0.31, None, None, None, no_keys),
    )  # fmt: skip


def test_render_report_shows_nulls_with_their_reasons():
    fig = ReportFigure("f", "dynamics", "A <title>", "look & see", "png", MAGIC["png"] + b"x")
    skipped = [{"name": "g", "title": "G", "reason": "MLP has no attention"}]
    page = render_report(never_grokked_summary(), "name: x\n", [fig], skipped)
    assert "n/a: test accuracy never reached 0.95 (best 0.31 at step 300)" in page
    assert "n/a: no neuron cluster has at least 2 members" in page  # the ablation drop, with why
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "Fourier basis (frequencies k of Z_n) Z_6 (discrete log base 3)" in text
    assert "key frequencies (used) none (no neuron cluster has at least 2 members: the model shows no" in text
    assert "0 to <span class='null'>n/a: no grokking step</span>" in page  # memorization has no end
    assert "<span class='fail'>0 of 1 passed</span>" in page
    assert "A &lt;title&gt;" in page and "look &amp; see" in page  # escaped
    assert "MLP has no attention" in page
    assert base64.b64encode(MAGIC["png"] + b"x").decode() in page
