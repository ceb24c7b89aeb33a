"""The ``groklab`` command line (Typer). The only code that decides where files go.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 1 internal failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from groklab.config import Config, ConfigError, load_config
from groklab.runs import RunError, list_runs

app = typer.Typer(
    name="groklab",
    help="A laboratory for grokking on modular arithmetic.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="Packaged preset name or YAML path.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Dotted override key=value (repeatable).")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Run directory to create.")]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Where runs go when --out is not given.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


class BadInput(Exception):
    """Raised by commands for user errors not covered by ConfigError / RunError."""


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def user_errors(fn: F) -> F:
    """Turn the known bad-input exceptions into a one-line message and exit code 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, RunError, BadInput) as e:
            fail(str(e))

    return wrapper  # type: ignore[return-value]


def default_run_dir(runs_dir: Path, cfg: Config) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = runs_dir / f"{stamp}__{cfg.name}__seed{cfg.seed}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


# -- progress ---------------------------------------------------------------------------------------
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


# -- train ------------------------------------------------------------------------------------------
@app.command()
@user_errors
def train(
    config: ConfigOpt = "nanda",
    set_: SetOpt = None,
    out: OutOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue this run directory.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model into a new run directory, or --resume one."""
    from groklab.runs import check_new_run_path
    from groklab.train import resume_training, run_config, start_training

    if resume is not None:
        if set_ or out is not None:
            raise BadInput("--resume takes no --set or --out: the run's own config.yaml is used")
        from groklab.runs import Run

        cfg = run_config(Run.open(resume))
        with training_progress(cfg.train.steps, 0, quiet) as update:
            run, result = resume_training(
                resume,
                on_eval=update,
                on_warning=lambda w: err_console.print(f"warning: {w}", highlight=False),
            )
    else:
        cfg = load_config(config, set_)
        path = out if out is not None else default_run_dir(runs_dir, cfg)
        check_new_run_path(path)
        with training_progress(cfg.train.steps, 0, quiet) as update:
            run, result = start_training(cfg, path, on_eval=update)
    print_result(run.path, result)
    if result.state != "completed":
        raise typer.Exit(1)


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
        table.add_row(name, f"{result[name]['median_ms']:.2f}", f"{result[name]['min_ms']:.2f}")
    console.print(table)
    console.print(f"fast / full = {result['ratio']:.3f}  (full is {1 / result['ratio']:.2f}x slower)")


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
    table = Table()
    cols = ["name", "op", "p", "train_frac", "steps", "state", "train_acc", "test_acc", "grok_step"]
    for c in cols:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*(_fmt(row.get(c)) for c in cols))
    console.print(table)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="groklab")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
