"""The notebook API (DESIGN section 8): train, train_seeds, analyze, from_hooked_transformer, and the statistics
over seeds of an ensemble directory (aggregate, load_aggregate; DESIGN section 9).

``groklab.train`` is both this function and the training subpackage (``groklab.train.Trainer``):
the subpackage module is callable and calls :func:`train` here, so ``gl.train(...)`` works
whatever was imported first.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from groklab.config import Config
from groklab.records import Analysis, SeedAggregate, SeedMember, Summary
from groklab.runs import Run, RunError, load_run, read_aggregate, seed_members

if TYPE_CHECKING:
    from groklab.models import MLPModel, Transformer
    from groklab.train import Callback, EvalResult

__all__ = [
    "aggregate", "analyze", "from_hooked_transformer", "lenses", "llc", "load_aggregate", "train", "train_seeds",
]  # fmt: skip


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


def train_seeds(
    config: str | Path | Config = "nanda",
    seeds: Sequence[int] = range(8),
    *,
    set: Mapping[str, Any] | Sequence[str] | None = None,  # noqa: A002  (the CLI's --set)
    out: str | Path | None = None,
    runs_dir: str | Path = "runs",
) -> list[Run]:
    """Train ``seeds`` together as one ensemble (``groklab train --seeds``, DESIGN section 9): member
    S has seed = split_seed = S and is an ordinary run directory ``out/seed_S``; returns the
    members' runs in the order of ``seeds``. A member that fails or is interrupted raises RunError
    (after every member has finished) with the reasons."""
    from groklab.limits import ensemble_too_large
    from groklab.runs import create_ensemble_dir, default_run_dir
    from groklab.train.ensemble import batch_refusal, member_configs, start_ensemble

    cfg, seeds = _config(config, set), [int(s) for s in seeds]
    if not seeds or len(frozenset(seeds)) != len(seeds) or min(seeds) < 0:
        raise RunError(f"seeds must be distinct integers >= 0, got {seeds}")
    why = batch_refusal(cfg) or ensemble_too_large(cfg, len(seeds))
    if why:
        raise RunError(why)
    spec = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ",".join(map(str, seeds))
    path = Path(out) if out is not None else default_run_dir(Path(runs_dir), cfg, f"seeds{spec.replace(',', '_')}")
    results = start_ensemble(member_configs(cfg, seeds), create_ensemble_dir(path, seeds, cfg.name))
    bad = [f"{run.path}: {r.state} at step {r.step}: {r.error}" for run, r in results if r.state != "completed"]
    if bad:
        raise RunError("; ".join(bad))
    return [run for run, _ in results]


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


def load_aggregate(path: str | Path) -> SeedAggregate:
    """The statistics over seeds that ``groklab reproduce --seeds`` wrote to ``DIR/aggregate.json``
    (``path``: DIR or the file), as a typed :class:`~groklab.records.SeedAggregate`:
    ``agg.quantity("grokking_step").median``, ``.ci_low``, ``.values`` (seed -> value), ...;
    RunError when missing or unreadable."""
    return typing.cast(SeedAggregate, read_aggregate(path))


def aggregate(runs: str | Path | Sequence[Run | str | Path], *, root: str | Path | None = None) -> SeedAggregate:
    """The statistics over seeds of ``runs`` (an ensemble directory, whose ``seed_S`` members are
    taken, or a list of runs), computed from their analyses and written nowhere (see
    :func:`groklab.analysis.seeds.aggregate_seeds`). A member whose training did not complete, or
    that has no readable analysis, is left out and listed with its state and the reason. Members'
    paths in the record are relative to ``root`` (default: the ensemble directory, else the common
    parent). RunError when the runs are not one config up to ``seed`` and ``task.split_seed``."""
    from groklab.analysis.seeds import aggregate_seeds

    if isinstance(runs, str | Path):
        root = runs if root is None else root
        members = seed_members(Path(runs))
        if not members:
            raise RunError(f"{runs}: no member runs (seed_S directories holding config.yaml)")
    else:
        members = [r if isinstance(r, Run) else load_run(r) for r in runs]
    base = Path(root) if root is not None else Path(os.path.commonpath([m.path.resolve() for m in members]))
    summaries, left_out = seed_summaries(members, base)
    try:
        agg = aggregate_seeds(summaries, left_out)
    except ValueError as e:
        raise RunError(str(e)) from None
    agg.members = [_located(m, base, {r.config.seed: r for r in members}) for m in agg.members]
    return agg


def seed_summaries(members: Sequence[Run], base: Path) -> tuple[list[Summary], list[SeedMember]]:
    """(summaries of the members that completed training and have an analysis, the others as
    left-out :class:`SeedMember` with their state and reason); RunError when the members are not
    one config up to seeds, or two share a seed."""
    from groklab.analysis.seeds import seed_group_key

    keys = {seed_group_key(m.config_dict()): m for m in members}
    if len(keys) > 1:
        a, b = list(keys.values())[:2]
        raise RunError(f"{a.path} and {b.path} differ in more than seed and task.split_seed: not one seed group")
    summaries, left_out = [], []
    for run in members:
        status, seed = run.status(), run.config.seed
        rel = os.path.relpath(run.path.resolve(), base.resolve())
        if status.get("state") != "completed":
            why = f"training {status.get('state')}" + (f": {status['error']}" if status.get("error") else "")
            left_out.append(SeedMember(seed, rel, status.get("state"), False, why))
        elif not run.has_analysis():
            left_out.append(
                SeedMember(seed, rel, "completed", False, f"not analysed (run `groklab analyze {run.path}`)")
            )
        else:
            try:
                summaries.append(run.analysis.summary)
            except RunError as e:
                left_out.append(SeedMember(seed, rel, "completed", False, f"analysis unreadable: {e}"))
    return summaries, left_out


def _located(member: SeedMember, base: Path, runs: dict[int, Run]) -> SeedMember:
    """``member`` with its run directory and report page relative to ``base``."""
    from dataclasses import replace

    run = runs.get(member.seed)
    if run is None:
        return member
    where = run.path.resolve()
    report = os.path.relpath(where / run.report_path.name, base.resolve()) if run.report_path.is_file() else None
    return replace(member, run=os.path.relpath(where, base.resolve()), report=report)
