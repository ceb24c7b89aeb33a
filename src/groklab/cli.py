"""The ``groklab`` command line (Typer). The only code that decides where files go.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 internal failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from groklab.cli_steps import (
    BadInput,
    all_completed,
    analysed_run,
    console,
    draw_figures,
    err_console,
    parse_seeds,
    print_result,
    print_summary,
    resume_ensemble_dir,
    run_analysis,
    train_ensemble,
    train_new_run,
    training_progress,
    user_errors,
    write_report,
    write_seed_aggregate,
)
from groklab.config import load_config
from groklab.runs import Run, list_runs
from groklab.summary import format_value

app = typer.Typer(
    name="groklab",
    help="A laboratory for grokking on modular arithmetic.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="Packaged preset name or YAML path.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Dotted override key=value (repeatable).")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Run directory to create.")]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Where runs go when --out is not given.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
SeedsOpt = Annotated[
    str | None,
    typer.Option("--seeds", help="Train these seeds together (0-7 or 0,3,5): seed = split_seed = S, in OUT/seed_S."),
]


# -- train ------------------------------------------------------------------------------------------
@app.command()
@user_errors
def train(
    config: ConfigOpt = "nanda",
    set_: SetOpt = None,
    out: OutOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue this run (or ensemble) directory.")] = None,
    seeds: SeedsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model into a new run directory, an ensemble of seeds (--seeds), or --resume one."""
    from groklab.runs import is_ensemble_dir
    from groklab.train import resume_training

    if resume is not None:
        if set_ or out is not None or seeds is not None:
            raise BadInput("--resume takes no --set, --out or --seeds: the run's own config.yaml is used")
        from groklab.runs import Run

        if is_ensemble_dir(resume):
            resume_ensemble_dir(resume, quiet)
            return

        cfg = Run.open(resume).config
        with training_progress(cfg.train.steps, 0, quiet) as update:
            run, result = resume_training(
                resume,
                on_eval=update,
                on_warning=lambda w: err_console.print(f"warning: {w}", highlight=False),
            )
        print_result(run.path, result)
        if result.state != "completed":
            raise typer.Exit(1)
    elif seeds is not None:
        all_completed(train_ensemble(load_config(config, set_), seeds, out, runs_dir, quiet)[1])
    else:
        train_new_run(load_config(config, set_), out, runs_dir, quiet)


# -- bench ------------------------------------------------------------------------------------------
@app.command()
@user_errors
def bench(
    config: ConfigOpt = "nanda",
    set_: SetOpt = None,
    steps: Annotated[int, typer.Option("--steps", help="Timed steps per path (>= 20).")] = 30,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed steps first.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Time full-batch training steps: fast `=`-only path vs. the plain full forward."""
    from groklab.bench import bench_training_step

    if steps < 20:
        raise BadInput(f"--steps must be at least 20, got {steps}")
    if warmup < 0:
        raise BadInput(f"--warmup must be >= 0, got {warmup}")
    cfg = load_config(config, set_)
    result = bench_training_step(cfg, steps=steps, warmup=warmup)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"training step, {cfg.name} ({result['device']}, batch {result['batch']})")
    for col in ("path", "median ms/step", "min ms/step"):
        table.add_column(col)
    for name in ("fast", "full"):
        label = f"fast ({result['fast_path']})" if name == "fast" else name
        table.add_row(label, f"{result[name]['median_ms']:.2f}", f"{result[name]['min_ms']:.2f}")
    console.print(table)
    console.print(f"fast / full = {result['ratio']:.3f}  (full is {1 / result['ratio']:.2f}x slower)")
    if result["allocator_tuned"]:
        console.print("both paths ran with glibc's malloc thresholds raised, as training does")


# -- list -------------------------------------------------------------------------------------------
@app.command("list")
@user_errors
def list_cmd(runs_dir: RunsDirOpt = Path("runs")) -> None:
    """A table of the runs under --runs-dir."""
    from groklab.summary import run_row

    if not runs_dir.is_dir():
        raise BadInput(f"--runs-dir {runs_dir}: no such directory")
    rows = [run_row(r) for r in list_runs(runs_dir)]
    if not rows:
        console.print(f"no runs under {runs_dir}")
        return
    table = Table(box=None, pad_edge=False)
    cols = ["name", "op", "p", "train_frac", "steps", "state", "train_acc", "test_acc", "grokking_step"]
    for c in cols:
        table.add_column(c, overflow="fold", no_wrap=c != "name", min_width=24 if c == "name" else None)
    for row in rows:
        table.add_row(*(format_value(row.get(c)) for c in cols))
    (console if console.is_terminal else Console(width=200)).print(table)  # pipes: no 80-column cut


# -- analyze and reproduce -------------------------------------------------------------------------
RunDirArg = Annotated[Path, typer.Argument(help="A run directory.")]


@app.command()
@user_errors
def analyze(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Fourier analysis, key frequencies, progress measures, ablations: writes RUN_DIR/analysis/."""
    summary = run_analysis(run_dir, quiet)
    print_summary(summary)
    console.print(f"wrote {run_dir / 'analysis'}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def reproduce(
    config: ConfigOpt = "nanda",
    set_: SetOpt = None,
    out: OutOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    seeds: SeedsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train through cleanup, analyse, draw figures and write the report.

    Training stops once cleanup is over by the online rule of ``groklab.train.stopping`` (test
    accuracy held at >= 0.99, then the log-loss gap and the weight norm flat over a window), or at
    the budget ``train.steps``; a preset's ``train.stop_after_grok`` is ignored. ``--set
    train.stop_after_grok=N`` restores the older rule (stop N steps after test accuracy has held
    at >= 0.99) instead. With ``--seeds``, the seeds train together as an ensemble (each member
    with its own rule), each is analysed and reported, and OUT/aggregate.json with the page
    OUT/report.html gives the statistics over the seeds.
    """
    from groklab.train.stopping import CleanupStop

    overrides = list(set_ or [])
    cleanup = not any(o.split("=", 1)[0].strip() == "train.stop_after_grok" for o in overrides)
    if cleanup:
        overrides.append("train.stop_after_grok=null")
    cfg = load_config(config, overrides)
    if seeds is None:
        stop = CleanupStop() if cleanup else None
        run = train_new_run(cfg, out, runs_dir, quiet, callbacks=[stop] if stop else None)
        if stop is not None:
            why = stop.reason or f"the cleanup rule did not fire within the budget train.steps={cfg.train.steps}"
            console.print(f"training stopped: {why}", highlight=False, soft_wrap=True)
        _analyse_and_report(run, quiet)
        return
    stops = [CleanupStop() for _ in parse_seeds(seeds)] if cleanup else []
    path, results = train_ensemble(
        cfg, seeds, out, runs_dir, quiet, callbacks=(lambda i: [stops[i]]) if cleanup else None
    )
    failed = False
    for run, result in results:
        if result.state == "completed":
            failed |= not _analyse_and_report(run, quiet, exit_on_failure=False)
    page = write_seed_aggregate(path, [run for run, _ in results], quiet)
    console.print(f"seed report: {page}", highlight=False, soft_wrap=True)
    all_completed(results)
    if failed:
        raise typer.Exit(1)


def _analyse_and_report(run: Run, quiet: bool, exit_on_failure: bool = True) -> bool:
    """Analyse ``run``, draw its figures and write its report; False (or exit 1) when a figure failed."""
    from groklab.report import run_report

    print_summary(run_analysis(run.path, quiet))
    console.print(f"run directory: {run.path}", highlight=False, soft_wrap=True)
    index = draw_figures(run, quiet)
    console.print(f"figures: {len(index['figures'])} in {run.figures_dir}", highlight=False, soft_wrap=True)
    if index["failed"]:
        if exit_on_failure:
            raise typer.Exit(1)
        return False
    console.print(f"report: {run.write_report(run_report(run))}", highlight=False, soft_wrap=True)
    return True


# -- dashboard --------------------------------------------------------------------------------------
@app.command()
@user_errors
def dashboard(
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Directory of runs and sweeps to show.")] = Path("runs"),
    port: Annotated[int, typer.Option("--port", "-p", help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address to bind; 127.0.0.1 is this machine only.")] = "127.0.0.1",
) -> None:
    """Serve the interactive dashboard (Streamlit) over --runs-dir, read-only; Ctrl-C stops it."""
    import importlib.util
    import os
    import sys

    from groklab.dashboard import check_port, streamlit_argv

    if any(importlib.util.find_spec(m) is None for m in ("streamlit", "plotly", "pandas")):
        raise BadInput("the dashboard needs its extra: pip install 'groklab[dashboard]'")
    problem = check_port(host, port)
    if problem:
        raise BadInput(problem)
    if not runs_dir.is_dir():
        err_console.print(f"warning: --runs-dir {runs_dir}: no such directory (the page says so)", highlight=False)
    console.print(f"dashboard of {runs_dir} at http://{host}:{port} (Ctrl-C stops it)", highlight=False, soft_wrap=True)
    argv = streamlit_argv(runs_dir.resolve(), port, host)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # the server replaces this process: signals and the exit code are its own


# -- figures and report -----------------------------------------------------------------------------
@app.command()
@user_errors
def figures(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Draw every figure (PNG, and GIF animations) into RUN_DIR/figures/; analyses the run first if needed."""
    run = analysed_run(run_dir, quiet)
    index = draw_figures(run, quiet)
    console.print(
        f"wrote {len(index['figures'])} figures to {run.figures_dir} in {index['elapsed_s']:.1f} s "
        f"({len(index['skipped'])} skipped, listed in figures/index.json)",
        highlight=False,
        soft_wrap=True,
    )
    if index["failed"]:
        raise typer.Exit(1)


@app.command()
@user_errors
def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory, a sweep directory (sweep.yaml) or an ensemble (seed_S members).")
    ],
    quiet: QuietOpt = False,
) -> None:
    """Write one self-contained HTML page: RUN_DIR/report.html, the sweep page SWEEP_DIR/report.html,
    or an ensemble's statistics over seeds (DIR/aggregate.json and DIR/report.html)."""
    from groklab.runs import atomic_write, is_run_dir, seed_members

    if (run_dir / "sweep.yaml").is_file():
        from groklab.sweeps.page import sweep_page

        path = run_dir / "report.html"
        atomic_write(path, sweep_page(run_dir))
    elif not is_run_dir(run_dir) and (members := seed_members(run_dir)):
        path = write_seed_aggregate(run_dir, members, quiet)
    elif run_dir.is_dir() and not is_run_dir(run_dir):
        raise BadInput(
            f"{run_dir}: neither a run directory (no config.yaml), a sweep directory (no sweep.yaml) "
            "nor an ensemble (no seed_S run directories)"
        )
    else:
        path = write_report(analysed_run(run_dir, quiet), quiet)
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False, soft_wrap=True)


# -- export -----------------------------------------------------------------------------------------
@app.command()
@user_errors
def export(
    run_dir: RunDirArg,
    out: Annotated[Path, typer.Argument(help="The bundle file to write, e.g. run.tar.gz (must not exist).")],
    steps: Annotated[
        str | None, typer.Option("--steps", help="Weights of these steps too: 100,500 or all (the final step always).")
    ] = None,
) -> None:
    """Write a release bundle: config, split, metrics, analysis and weights (safetensors) in one
    checksummed archive that `gl.load_run(OUT)` opens."""
    from groklab.bundle import export_bundle
    from groklab.runs import Run

    run = Run.open(run_dir)
    chosen = _parse_steps(steps, run.steps)
    path = export_bundle(run, out, chosen)
    weights = sorted({*(chosen or ()), run.steps[-1]})
    size = path.stat().st_size / 1e6
    console.print(f"wrote {path} ({size:.1f} MB; weights at steps {weights})", highlight=False, soft_wrap=True)


def _parse_steps(text: str | None, saved: list[int]) -> list[int] | None:
    """``--steps``: None, ``all`` (every saved step) or comma-separated step numbers."""
    if text is None:
        return None
    if text.strip() == "all":
        return saved
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise BadInput(f"--steps: expected comma-separated step numbers or 'all', got {text!r}") from None


# -- sweep ------------------------------------------------------------------------------------------
@app.command()
@user_errors
def sweep(
    spec: Annotated[str, typer.Argument(help="Sweep spec: a YAML path or a packaged name (e.g. weight_decay).")],
    executor: Annotated[str, typer.Option("--executor", "-e", help="local (process pool) or ray.")] = "local",
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Points at once (default: cores).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Sweep directory [<runs-dir>/sweep_<name>].")] = None,
    runs_dir: RunsDirOpt = Path("runs"),
    address: Annotated[str | None, typer.Option("--address", help="Join this Ray cluster (HOST:PORT).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed points again.")] = False,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Resubmits when a worker dies.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the points; run nothing.")] = False,
    batch: Annotated[
        int,
        typer.Option("--batch", help="Train up to N points that differ only in seed, lr, weight decay... together."),
    ] = 8,
    quiet: QuietOpt = False,
) -> None:
    """Run a sweep: every point of SPEC is a run under SWEEP_DIR/runs; completed points are skipped."""
    from groklab.sweeps import expand, load_spec
    from groklab.sweeps.display import sweep_display
    from groklab.sweeps.executors import check_executor_options, make_executor
    from groklab.sweeps.runner import run_sweep

    check_executor_options(executor, workers, address)
    if max_retries < 0:
        raise BadInput(f"--max-retries must be >= 0, got {max_retries}")
    if batch < 1:
        raise BadInput(f"--batch must be at least 1, got {batch}")
    sweep_spec = load_spec(spec)
    points = expand(sweep_spec)
    sweep_dir = out if out is not None else runs_dir / f"sweep_{sweep_spec.name}"
    if sweep_dir.exists() and not (sweep_dir / "sweep.yaml").is_file():
        if not sweep_dir.is_dir() or any(sweep_dir.iterdir()):
            raise BadInput(f"--out {sweep_dir}: exists and is not a sweep directory")
    if dry_run:
        for p in points:
            console.print(p.run_id, f"invalid: {p.error}" if p.error else "", highlight=False, soft_wrap=True)
        console.print(f"{len(points)} points -> {sweep_dir}", highlight=False)
        return
    pool, threads = make_executor(executor, workers, address, max_retries)
    with sweep_display(console, sweep_spec.name, len(points), quiet) as update:
        outcome = run_sweep(
            sweep_spec, points, sweep_dir, pool, threads=threads, retry_failed=retry_failed,
            max_retries=max_retries, on_update=update, batch=batch,
        )  # fmt: skip
    counts = ", ".join(f"{n} {s}" for s, n in sorted(outcome.counts.items()))
    console.print(f"sweep {sweep_spec.name}: {counts} -> {sweep_dir}/summary.csv", highlight=False, soft_wrap=True)
    for row in outcome.rows:
        if row["state"] == "failed":
            err_console.print(f"failed {row['run_id']}: {row['error']}", highlight=False, soft_wrap=True)
    if outcome.stopped or outcome.counts.get("completed", 0) != len(points):
        raise typer.Exit(1)


# -- newer lenses: the LLC (opt-in: it costs far more than `analyze`) -----------------------------
def _llc_settings(run_dir: Path, set_: list[str] | None):  # -> (Run, LLCConfig)
    from groklab.config import build_config, parse_override, to_dict
    from groklab.runs import Run

    run = Run.open(run_dir)
    overrides = [parse_override(s) for s in set_ or []]
    for key, _ in overrides:
        if not key.startswith("analysis.llc."):
            raise BadInput(f"--set {key}: only analysis.llc.* keys apply here")
    return run, build_config([to_dict(run.config)], overrides).analysis.llc


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise BadInput(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise BadInput(f"{what}: expected positive numbers, got {text!r}")
    return values


@app.command("llc")
@user_errors
def llc_cmd(
    run_dir: RunDirArg,
    steps: Annotated[
        str | None,
        typer.Option("--steps", help="Comma-separated saved steps [analysis.llc.snapshots of them, evenly spaced]."),
    ] = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Local learning coefficient (devinterp SGLD, train split, float64) at chosen snapshots: writes
    RUN_DIR/analysis/llc.json. Sampler settings: analysis.llc.* of the run's config, or --set."""
    from groklab.analysis.lenses import llc_of_run, write_lens_record
    from groklab.cli_steps import spinner

    run, settings = _llc_settings(run_dir, set_)
    try:
        chosen = None if steps is None else sorted({int(v) for v in steps.split(",") if v.strip()})
    except ValueError:
        raise BadInput(f"--steps: expected comma-separated step numbers, got {steps!r}") from None
    with spinner("sampling", quiet) as say:
        series = llc_of_run(run, settings, chosen, on_step=lambda i, n: say(f"LLC at snapshot {i}/{n}"))
    write_lens_record(run, "llc", series)
    for p in series.points:
        console.print(
            f"step {p.step}: LLC {p.mean:.2f} +- {p.std:.2f} (MALA acceptance {p.acceptance:.2f}, {p.seconds:.1f} s)",
            highlight=False,
        )
    console.print(
        f"wrote {run.analysis_dir / 'llc.json'} ({series.seconds_per_snapshot:.1f} s per snapshot)",
        highlight=False,
        soft_wrap=True,
    )


@app.command("llc-calibrate")
@user_errors
def llc_calibrate(
    run_dir: RunDirArg,
    step: Annotated[int | None, typer.Option("--step", help="Saved step to calibrate at [the last].")] = None,
    epsilons: Annotated[
        str, typer.Option("--epsilons", help="Comma-separated SGLD step sizes.")
    ] = "1e-4,3e-4,1e-3,3e-3",
    n_betas: Annotated[str, typer.Option("--n-betas", help="Comma-separated n_beta values.")] = "1,2,5,20",
    set_: SetOpt = None,
) -> None:
    """An epsilon x n_beta grid of LLC estimates at one step, with chain traces and MALA acceptance:
    writes RUN_DIR/analysis/llc_calibration.json."""
    from groklab.analysis.lenses import calibrate_run, write_lens_record

    run, settings = _llc_settings(run_dir, set_)
    at = step if step is not None else (run.steps[-1] if run.steps else 0)
    cal = calibrate_run(run, settings, at, _floats(epsilons, "--epsilons"), _floats(n_betas, "--n-betas"))
    write_lens_record(run, "llc_calibration", cal)
    for c in cal.cells:
        est = "diverged" if c.diverged else f"LLC {c.mean:.2f} +- {c.std:.2f}, MALA acceptance {c.acceptance:.2f}"
        console.print(f"eps {c.epsilon:g}, n_beta {c.n_beta:g}: {est}", highlight=False)
    console.print(f"wrote {run.analysis_dir / 'llc_calibration.json'}", highlight=False, soft_wrap=True)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="groklab")


if __name__ == "__main__":  # pragma: no cover
    main()
