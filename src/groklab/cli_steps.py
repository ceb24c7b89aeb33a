"""What several ``groklab`` commands share: bad-input handling, progress display, and the steps
train -> analyse -> draw -> report with their console output. Part of the command line: like
``cli.py`` it decides where files go and prints; library code does neither.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from groklab.config import Config, ConfigError, printable
from groklab.conventions import basis_name
from groklab.files import FAILURE_ERRNOS, describe_error
from groklab.records import RecordError, Summary
from groklab.runs import Run, RunError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(Exception):
    """Raised by commands for user errors not covered by ConfigError / RunError."""


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn the known exceptions into a one-line message: bad input (config, run directory, records,
    arguments, a file that cannot be read) exits 2; the machine failing us (disk full, quota, I/O
    error, read-only file system, out of memory: :data:`groklab.files.FAILURE_ERRNOS`) exits 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, RunError, RecordError, BadInput) as e:
            fail(_one_line(str(e)))
        except MemoryError as e:
            fail(describe_error(e), 1)
        except OSError as e:
            fail(describe_error(e), 1 if e.errno in FAILURE_ERRNOS else 2)

    return wrapper  # type: ignore[return-value]


def _one_line(message: str) -> str:
    lines = message.strip().splitlines()
    return printable(" ".join(line.strip() for line in lines)) if lines else "error"


@contextmanager
def training_progress(total: int, start: int, quiet: bool) -> Iterator[Callable[[Any], None]]:
    """A Rich progress bar on a terminal (step, losses, accuracies); silent in pipes or with --quiet."""
    if quiet or not console.is_terminal:
        yield lambda result: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
    ) as progress:
        task = progress.add_task("train", total=total, completed=start, stats="")

        def update(r: Any) -> None:
            stats = f"loss {r.train_loss:.3g}/{r.test_loss:.3g}  acc {r.train_acc:.3f}/{r.test_acc:.3f}"
            progress.update(task, completed=r.step, stats=stats)

        yield update


def print_result(run_path: Path, result: Any) -> None:
    last = result.last_eval
    line = f"{result.state} at step {result.step}: {run_path}"
    if last is not None:
        line += f"  (train acc {last.train_acc:.4f}, test acc {last.test_acc:.4f})"
    console.print(line, highlight=False, soft_wrap=True)
    if result.error:
        err_console.print(f"reason: {result.error}", highlight=False, soft_wrap=True)


@contextmanager
def spinner(text: str, quiet: bool) -> Iterator[Callable[[str], None]]:
    """A Rich status line on a terminal; yields a function that updates its text (a no-op in pipes)."""
    if quiet or not console.is_terminal:
        yield lambda text: None
        return
    with console.status(text, spinner="dots") as status:
        yield lambda text: status.update(text)


def train_new_run(
    cfg: Config, out: Path | None, runs_dir: Path, quiet: bool, callbacks: list[Any] | None = None
) -> Run:
    """Create the run directory (``out`` or a default under ``runs_dir``) and train ``cfg`` into it
    (``callbacks``: trainer callbacks); exit 1 when training does not complete."""
    from groklab.runs import check_new_run_path, default_run_dir
    from groklab.train import start_training

    path = out if out is not None else default_run_dir(runs_dir, cfg)
    check_new_run_path(path)
    with training_progress(cfg.train.steps, 0, quiet) as update:
        run, result = start_training(cfg, path, on_eval=update, callbacks=callbacks)
    print_result(run.path, result)
    if result.state != "completed":
        raise typer.Exit(1)
    return run


MAX_SEEDS = 4096  # a bound on the text of --seeds before any memory estimate


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a range ``A-B`` (inclusive, A <= B) or a list ``A,B,C`` of distinct seeds >= 0."""
    text = text.strip()
    if not text:
        raise BadInput("--seeds: empty (give a range such as 0-7 or a list such as 0,3,5)")
    try:
        if "-" in text and "," not in text:
            lo_text, hi_text = text.split("-", 1)
            lo, hi = int(lo_text), int(hi_text)
            if hi < lo:
                raise BadInput(f"--seeds {text}: the range is reversed (write {hi}-{lo})")
            if hi - lo + 1 > MAX_SEEDS:
                raise BadInput(f"--seeds {text}: {hi - lo + 1:,} seeds is more than {MAX_SEEDS:,}")
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise BadInput(f"--seeds {text!r}: not a range A-B or a list A,B,C of integers") from None
    if any(s < 0 for s in seeds):
        raise BadInput(f"--seeds {text}: seeds must be >= 0")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise BadInput(f"--seeds {text}: seed {repeated[0]} is given twice")
    return seeds


def train_ensemble(
    cfg: Config,
    seeds_text: str,
    out: Path | None,
    runs_dir: Path,
    quiet: bool,
    callbacks: Callable[[int], list[Any]] | None = None,
) -> tuple[Path, list[tuple[Run, Any]]]:
    """``--seeds``: create the ensemble directory (``out`` or a default under ``runs_dir``) and
    train its members together (``callbacks(i)``: member i's own trainer callbacks). Returns the
    directory and each member's (run, result); prints them."""
    from groklab.limits import ensemble_too_large
    from groklab.runs import create_ensemble_dir, default_run_dir
    from groklab.train.ensemble import batch_refusal, member_configs, start_ensemble

    seeds = parse_seeds(seeds_text)
    why = batch_refusal(cfg) or ensemble_too_large(cfg, len(seeds))
    if why:
        raise BadInput(why)
    path = out if out is not None else default_run_dir(runs_dir, cfg, f"seeds{seeds_text.replace(',', '_')}")
    paths = create_ensemble_dir(path, seeds, cfg.name)
    with ensemble_progress(cfg.train.steps, 0, len(seeds), quiet) as update:
        results = start_ensemble(member_configs(cfg, seeds), paths, callbacks=callbacks, on_eval=update)
    print_ensemble(path, results)
    return path, results


def resume_ensemble_dir(path: Path, quiet: bool) -> list[Run]:
    """``--resume`` of an ensemble directory: every member from the newest common checkpoint."""
    from groklab.runs import ensemble_members
    from groklab.train.ensemble import resume_ensemble

    members = ensemble_members(path)
    cfg = Run.open(members[0]).config
    with ensemble_progress(cfg.train.steps, 0, len(members), quiet) as update:
        results = resume_ensemble(
            members, on_warning=lambda w: err_console.print(f"warning: {w}", highlight=False), on_eval=update
        )
    print_ensemble(path, results)
    all_completed(results)
    return [run for run, _ in results]


def print_ensemble(path: Path, results: list[tuple[Run, Any]]) -> None:
    for run, result in results:
        print_result(run.path, result)
    console.print(f"ensemble: {path}", highlight=False, soft_wrap=True)


def all_completed(results: list[tuple[Run, Any]]) -> None:
    """Exit 1 unless every member completed."""
    if any(r.state != "completed" for _, r in results):
        raise typer.Exit(1)


@contextmanager
def ensemble_progress(total: int, start: int, n: int, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar over an ensemble's steps with the number of members still training."""
    if quiet or not console.is_terminal:
        yield lambda step, active: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[stats]}"), console=console) as progress:  # fmt: skip
        task = progress.add_task("train", total=total, completed=start, stats=f"{n} members")

        def update(step: int, active: int) -> None:
            progress.update(task, completed=step, stats=f"{active} of {n} members training")

        yield update


def run_analysis(run_dir: Path, quiet: bool) -> Summary:
    """Analyse a run and write RUN_DIR/analysis/*; returns the summary."""
    from groklab.analysis.pipeline import analyze_run
    from groklab.train import resolve_device

    run = Run.open(run_dir)
    with spinner("analysing checkpoints", quiet) as say:
        result = analyze_run(
            run, device=str(resolve_device("auto")), on_checkpoint=lambda i, n: say(f"analysing checkpoint {i}/{n}")
        )
    run.write_analysis(result)
    for w in result.warnings:
        err_console.print(f"warning: {w}", highlight=False, soft_wrap=True)
    return result.summary


def print_summary(summary: Summary) -> None:
    """The basis, key frequencies (or why there are none), events and success criteria of an analysis."""
    ev = summary.events
    keys = (
        f"key frequencies {summary.key_frequencies} (from neuron clusters)"
        if summary.key_frequencies
        else f"no key frequencies ({summary.key_frequencies_reason})"
    )
    console.print(
        f"basis {basis_name(summary.basis)}; {keys}; "
        f"memorization step {ev.memorization_step}, grokking step {ev.grokking_step}, delay {ev.delay}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for c in summary.criteria:
        mark = "[green]pass[/]" if c.passed else "[red]fail[/]"
        margin = "" if c.margin is None else f", margin {c.margin:.4g}"
        console.print(f"  {mark} {c.name}: {c.value} ({c.comparison} {c.threshold}{margin})", soft_wrap=True)


def analysed_run(run_dir: Path, quiet: bool) -> Any:
    """Open a run directory; when it has no analysis yet, run the analysis first and say so."""
    run = Run.open(run_dir)
    if not run.has_analysis():
        err_console.print(
            f"{run_dir}: not analysed yet; running `groklab analyze` first", highlight=False, soft_wrap=True
        )
        run_analysis(run_dir, quiet)
    return run


def draw_figures(run: Any, quiet: bool) -> dict[str, Any]:
    """Draw every registered figure into RUN_DIR/figures/ and write figures/index.json (what was
    drawn with its caption, what was skipped and why). Returns the index."""
    from groklab import plots

    t0 = time.perf_counter()
    data = plots.RunData(run)
    index: dict[str, Any] = {"analysed_step": data.summary.analysed_step}
    index.update(figures=[], skipped=[], failed=[])
    with spinner("drawing figures", quiet) as say:
        for r in plots.render_all(data):
            spec = r.spec
            say(f"drawing {spec.filename}")
            entry = {"name": spec.name, "group": spec.group, "title": spec.title}
            if r.obj is None:
                run.remove_figure(spec.filename)
                bucket = "failed" if r.error else "skipped"
                index[bucket].append({**entry, "reason": r.error or r.skip_reason})
                continue
            try:
                run.write_figure(spec.filename, lambda tmp, r=r: plots.save(r.obj, tmp, r.spec.kind))
            finally:
                plots.close(r.obj)
            index["figures"].append({**entry, "caption": spec.caption, "file": spec.filename, "kind": spec.kind})
    index["elapsed_s"] = round(time.perf_counter() - t0, 2)
    index["warnings"] = data.warnings
    run.write_figure_index(index)
    for w in data.warnings:
        err_console.print(f"warning: {w}", highlight=False, soft_wrap=True)
    for s in index["skipped"]:
        console.print(f"  skipped {s['name']}: {s['reason']}", highlight=False, soft_wrap=True)
    for f in index["failed"]:
        err_console.print(f"failed {f['name']}: {f['reason']}", highlight=False, soft_wrap=True)
    return index


def figures_current(run: Any) -> bool:
    """Whether figures/index.json exists and is newer than the analysis it was drawn from."""
    index = run.figure_index()
    if index is None or index.get("failed"):
        return False
    return run.figure_index_path.stat().st_mtime >= (run.analysis_dir / "summary.json").stat().st_mtime


def write_report(run: Any, quiet: bool) -> Path:
    """Draw the figures if they are missing or older than the analysis, then write report.html."""
    from groklab.report import run_report

    if not figures_current(run):
        err_console.print(f"{run.path}: figures missing or older than the analysis; drawing them first",
                          highlight=False, soft_wrap=True)  # fmt: skip
        if draw_figures(run, quiet)["failed"]:
            raise typer.Exit(1)
    return run.write_report(run_report(run))


def write_seed_aggregate(out_dir: Path, runs: list[Run], quiet: bool) -> Path:
    """The statistics over seeds of an ensemble (DESIGN section 9): analyse each member that
    completed training and has no analysis yet, aggregate their summaries
    (:func:`groklab.analysis.seeds.aggregate_seeds`), and write ``OUT_DIR/aggregate.json``,
    ``OUT_DIR/figures/seed_curves.png`` and ``OUT_DIR/report.html``. Prints one line per headline
    quantity (median [CI], censored count) and one per member left out (with its state). Returns
    the page's path. RunError when the runs are not one config up to their seeds.

    A member whose training did not complete, or whose analysis fails, is left out of the
    statistics and listed (with its state and the reason) in aggregate.json, on the page and here.
    Members' report pages are linked when they exist (write them first)."""
    from groklab import plots
    from groklab.api import aggregate
    from groklab.plots.seeds import SEED_CURVES_CAPTION, seed_curves
    from groklab.report import ReportFigure
    from groklab.runs import write_seed_files
    from groklab.seed_report import render_seed_report

    for run in runs:
        if run.status().get("state") == "completed":
            try:
                analysed_run(run.path, quiet)
            except RunError as e:  # the member is then left out as not analysed, and listed
                err_console.print(f"{run.path}: analysis failed: {e}", highlight=False, soft_wrap=True, markup=False)
    agg = aggregate(runs, root=out_dir)
    included = {m.seed for m in agg.members if m.included}
    metrics = {run.config.seed: run.metric_records() for run in runs if run.config.seed in included}
    fig = seed_curves(metrics, f"{agg.name}: {len(metrics)} seeds (op {agg.op}, p = {agg.p})")
    try:
        buf = io.BytesIO()
        plots.save(fig, buf)
    finally:
        plots.close(fig)
    png = buf.getvalue()
    figure = ReportFigure("seed_curves", "seeds", "Curves of every seed and their median", SEED_CURVES_CAPTION,
                          "png", png)  # fmt: skip
    page = write_seed_files(out_dir, agg, png, render_seed_report(agg, figure))
    _print_seed_lines(agg)
    return page


def _print_seed_lines(agg: Any) -> None:
    """One line for the members, one per member left out, one per headline quantity."""
    from groklab.analysis.seeds import HEADLINE

    fraction = "" if agg.fraction_grokked is None else f", fraction {agg.fraction_grokked:.3g}"
    console.print(f"{len(agg.members)} members: {agg.n_grokked} of {agg.n_included} analysed grokked{fraction}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    for m in agg.members:
        if not m.included:
            err_console.print(f"seed {m.seed} ({m.run}) left out, state {m.state}: {m.reason}",
                              highlight=False, soft_wrap=True, markup=False)  # fmt: skip
    for name in HEADLINE:
        q = agg.quantity(name)
        median, lo, hi = (_stat(v) for v in (q.median, q.ci_low, q.ci_high))
        coverage = "" if q.ci_coverage is None else f" (coverage {q.ci_coverage:.3f})"
        line = f"  {name}: median {median} [{lo}, {hi}]{coverage}; n {q.n}, censored {q.n_censored}"
        if q.n_left_out:
            line += f", left out {q.n_left_out}"
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def _stat(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"
