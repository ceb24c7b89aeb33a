"""The notebook API (DESIGN section 8): train, analyze, from_hooked_transformer.

``groklab.train`` is both this function and the training subpackage (``groklab.train.Trainer``):
the subpackage module is callable and calls :func:`train` here, so ``gl.train(...)`` works
whatever was imported first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from groklab.config import Config
from groklab.records import Analysis
from groklab.runs import Run, RunError, load_run

if TYPE_CHECKING:
    from groklab.models import MLPModel, Transformer
    from groklab.train import Callback, EvalResult

__all__ = ["analyze", "from_hooked_transformer", "lenses", "llc", "train"]


def _config(config: str | Path | Config, overrides: Mapping[str, Any] | Sequence[str] | None) -> Config:
    """A preset name, YAML path or Config, with dotted overrides (a mapping, or ``key=value`` strings)."""
    from groklab.config import build_config, parse_override, read_preset, to_dict

    base = to_dict(config) if isinstance(config, Config) else read_preset(str(config))
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides or [])
    return build_config([base], list(items))


def train(
    config: str | Path | Config = "nanda",
    *,
    set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002  (the CLI's --set)
    out: str | Path | None = None,
    runs_dir: str | Path = "runs",
    model: Transformer | MLPModel | None = None,
    callbacks: list[Callback | Callable[[EvalResult], None]] | None = None,
) -> Run:
    """Train a preset name, YAML path or :class:`Config` (``set``: dotted overrides) into the run
    directory ``out`` (default: a new one under ``runs_dir``) and return the :class:`Run`.

    ``model``: train a model you built (a groklab Transformer or MLPModel matching the config's
    ``model`` and ``task.p``) in the same loop and run directory. ``callbacks``: see
    :class:`groklab.train.Callback`. A run that fails or is interrupted raises RunError with the reason.
    """
    from groklab.runs import default_run_dir
    from groklab.train import start_training

    cfg = _config(config, set)
    if model is not None and isinstance(getattr(model, "cfg", None), type(cfg.model)) and model.cfg != cfg.model:
        from dataclasses import replace

        cfg = replace(cfg, model=model.cfg)
    path = Path(out) if out is not None else default_run_dir(Path(runs_dir), cfg)
    run, result = start_training(cfg, path, model=model, callbacks=callbacks)
    if result.state != "completed":
        raise RunError(f"{run.path}: training {result.state} at step {result.step}: {result.error}")
    return run


def analyze(run: Run | str | Path, *, write: bool = True, device: str = "auto") -> Analysis:
    """Analyse a run (every checkpoint and snapshot); the typed result is also written to
    ``RUN_DIR/analysis/`` unless ``write`` is False."""
    from groklab.analysis.pipeline import analyze_run
    from groklab.train import resolve_device

    run = run if isinstance(run, Run) else load_run(run)
    result = analyze_run(run, device=str(resolve_device(device)))
    if write:
        run.write_analysis(result)
    return result


def from_hooked_transformer(hooked: Any, p: int | None = None) -> Transformer:
    """A groklab Transformer with the weights of a TransformerLens HookedTransformer in the grokking
    demo's layout (tokens [a, b, =], d_vocab p+1); see :mod:`groklab.interop`."""
    from groklab.interop import from_hooked_transformer as convert

    return convert(hooked, p)


def llc(
    run: Run | str | Path,
    *,
    steps: Sequence[int] | None = None,
    set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002  (the CLI's --set: analysis.llc.*)
    write: bool = True,
) -> Any:
    """The LLC (devinterp SGLD on the train split, float64) at ``steps`` (default: the config's
    ``analysis.llc.snapshots`` saved steps, evenly spaced): an ``LLCSeries``, also written to
    ``RUN_DIR/analysis/llc.json``. Sampler settings: the run's ``analysis.llc`` with ``set`` applied.
    Costly: chains x (burnin + draws) full-batch passes per step."""
    from groklab.analysis.lenses import llc_of_run, write_lens_record
    from groklab.config import build_config, parse_override, to_dict

    run = run if isinstance(run, Run) else load_run(run)
    items = set.items() if isinstance(set, Mapping) else map(parse_override, set or [])
    settings = build_config([to_dict(run.config)], list(items)).analysis.llc
    series = llc_of_run(run, settings, list(steps) if steps is not None else None)
    if write:
        write_lens_record(run, "llc", series)
    return series


def lenses(run: Run | str | Path) -> Any:
    """The lens records of an analysed run: ``(lenses, llc)`` (``Lenses`` from ``groklab analyze``,
    ``LLCSeries`` from ``groklab llc``; each None when not written)."""
    from groklab.analysis.lenses import read_lens_record

    run = run if isinstance(run, Run) else load_run(run)
    return read_lens_record(run, "lenses"), read_lens_record(run, "llc")
