"""The page, the files and the notebook API of statistics over seeds: a synthetic aggregate whose
numbers are known, and an ensemble directory of tiny real runs."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

import groklab as gl
from groklab.analysis.seeds import aggregate_seeds
from groklab.records import SeedMember
from groklab.runs import Run, RunError, seed_members
from groklab.seed_report import render_seed_report
from seed_helpers import summary


class Cells(HTMLParser):
    """Text of each table cell, by (row id, cell class)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self.links: list[str] = []
        self._row, self._cell = "", None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self._row = a.get("id") or ""
        elif tag == "td":
            self._cell = (a.get("class") or "").replace("num ", "")
            self.cells[(self._row, self._cell)] = ""
        elif tag == "a" and a.get("href", "").endswith(".html"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self.cells[(self._row, self._cell)] += data


def cells(page: str) -> Cells:
    parser = Cells()
    parser.feed(page)
    return parser


def test_page_shows_the_statistics_and_nulls_with_their_reasons():
    failed = SeedMember(8, "seed_8", "failed", False, "training failed: loss is NaN at step 120")
    summaries = [summary(s, 100 * (s + 1), keys=tuple(range(1, s + 2))) for s in range(5)]
    summaries += [summary(s, None) for s in (5, 6, 7)]
    agg = aggregate_seeds(summaries, left_out=[failed])
    agg.members[0].report = "seed_0/report.html"
    page = render_seed_report(agg)
    c = cells(page).cells
    row = "q-grokking_step"
    assert c[(row, "median")] == "450"
    assert (c[(row, "n")], c[(row, "censored")], c[(row, "left-out")]) == ("8", "3", "0")
    assert c[(row, "iqr")] == "200 to n/a"
    assert c[(row, "ci")] == "100 to n/a (coverage 0.992)"
    assert "q3, ci_high: censored" in c[(row, "")]
    assert "5: > 1000" in c[(row, "seeds")] and "never reached 0.95" in c[(row, "seeds")]
    assert c[("q-n_key_frequencies", "median")] == "3"  # 1..5 frequencies in the 5 that grokked
    assert c[("q-n_key_frequencies", "left-out")] == "3"
    assert "5 of 8 grokked (fraction 0.625)" in page and "1 left out" in page
    assert "loss is NaN at step 120" in c[("m-8", "")]
    assert cells(page).links == ["seed_0/report.html"]
    assert "http" not in page and "<script" not in page


def test_delay_half_step_median_is_printed_in_full():
    agg = aggregate_seeds([summary(0, 101), summary(1, 200)])
    assert cells(render_seed_report(agg)).cells[("q-grokking_step", "median")] == "150.5"


# ---------------------------------------------------------------- tiny real runs


def _member(src: Path, dst: Path, seed: int) -> Run:
    """A copy of a trained run as the member with seed = split_seed = ``seed`` (its analysis removed)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("analysis", "figures", "report.html"))
    cfg = yaml.safe_load((dst / "config.yaml").read_text())
    cfg["seed"], cfg["task"]["split_seed"] = seed, seed
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg))
    return Run(dst)


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory, analysed_run) -> Path:
    """seed_S: the shared analysed run (S is its seed, above 2); seed_1: trained here with seed 1
    and split seed 1, not analysed; seed_2: a member whose training failed."""
    from dataclasses import replace

    from groklab.train import start_training

    root = tmp_path_factory.mktemp("ensemble")
    base = Run(analysed_run).config  # the shared run's resolved config, with other seeds
    assert base.seed > 2  # sorts after the members made here
    shutil.copytree(analysed_run, root / f"seed_{base.seed}")
    cfg = replace(base, seed=1, task=replace(base.task, split_seed=1))
    _, result = start_training(cfg, root / "seed_1")
    assert result.state == "completed"
    (root / "seed_1" / "report.html").write_text("<html></html>")  # a member's page, for the link
    failed = _member(analysed_run, root / "seed_2", 2)
    failed.write_status("failed", 300, "loss is NaN at step 300")
    return root


def test_write_seed_aggregate_on_tiny_runs(ensemble, capsys):
    from groklab.cli_steps import write_seed_aggregate

    runs = seed_members(ensemble)
    shared = runs[-1].config.seed  # the shared analysed run, by seed after 1 and 2
    assert [r.path.name for r in runs] == ["seed_1", "seed_2", f"seed_{shared}"]
    page = write_seed_aggregate(ensemble, runs, quiet=True)
    assert page == ensemble / "report.html"
    assert (ensemble / "figures" / "seed_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Run(ensemble / "seed_1").has_analysis()  # analysed first, as `groklab analyze` would
    agg = gl.load_aggregate(ensemble)
    assert json.loads((ensemble / "aggregate.json").read_text())["seeds"] == [1, 2, shared]
    groks = {s: Run(ensemble / f"seed_{s}").analysis.events.grokking_step for s in (1, shared)}
    g = agg.quantity("grokking_step")
    assert g.values == {s: float(v) if v is not None else None for s, v in groks.items()}
    observed = [v for v in groks.values() if v is not None]
    if len(observed) == 2:
        assert g.median == sum(observed) / 2 and (g.ci_low, g.ci_high) == (min(observed), max(observed))
    assert [(m.seed, m.state, m.included) for m in agg.members] == [
        (1, "completed", True), (2, "failed", False), (shared, "completed", True)
    ]  # fmt: skip
    assert agg.members[0].report == "seed_1/report.html" and agg.members[2].report is None
    assert "loss is NaN at step 300" in (agg.members[1].reason or "")
    html = page.read_text()
    median = cells(html).cells[("q-grokking_step", "median")]
    assert median == ("n/a" if g.median is None else re.sub(r"\.0$", "", f"{g.median:.1f}"))
    assert cells(html).links == ["seed_1/report.html"] and "data:image/png;base64," in html
    out = capsys.readouterr()
    assert "3 members:" in out.out and "grokking_step: median" in out.out
    assert "seed 2 (seed_2) left out, state failed" in out.err
    # the notebook computes the same aggregate without writing
    assert gl.aggregate(ensemble) == agg


def test_runs_that_are_not_one_seed_group_are_refused(ensemble, tmp_path):
    shared = seed_members(ensemble)[-1].path
    other = _member(shared, tmp_path / "seed_5", 5)
    cfg = yaml.safe_load(other.config_path.read_text())
    cfg["optim"]["lr"] = 0.5
    other.config_path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(RunError, match="differ in more than seed"):
        gl.aggregate([shared, other.path])
    with pytest.raises(RunError, match="missing"):
        gl.load_aggregate(tmp_path)


def test_list_runs_finds_ensemble_members(ensemble, tmp_path):
    from groklab.runs import list_runs

    root = tmp_path / "runs"
    shutil.copytree(ensemble, root / "ens", ignore=shutil.ignore_patterns("checkpoints", "snapshots"))
    (root / "ens" / "seed_x").mkdir()  # not a member: no seed number
    (root / "notes").mkdir()
    names = [f"ens/{r.path.name}" for r in seed_members(ensemble)]
    assert [r.path.relative_to(root).as_posix() for r in list_runs(root)] == names
