"""Training: start a run in a directory, or resume one, holding the run's writer lock throughout."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from groklab.config import Config, to_yaml
from groklab.data import make_dataset, make_split
from groklab.files import describe_error
from groklab.models import MLPModel, Transformer
from groklab.runs import Run
from groklab.train.checkpoint import load_newest_valid
from groklab.train.loop import Callback, EvalResult, Trainer, TrainResult, resolve_device

__all__ = [
    "Callback",
    "EvalResult",
    "TrainResult",
    "Trainer",
    "resolve_device",
    "resume_training",
    "start_training",
]

Callbacks = list[Callback | Callable[[EvalResult], None]] | None


def _train(trainer: Trainer) -> TrainResult:
    """Run the loop; on an exception record ``failed`` (``interrupted`` for Ctrl-C) with the reason
    in status.json, then re-raise. When status.json itself cannot be written (the disk is full), it
    keeps its last content (``running``); the training lock dies with the process, so readers and
    sweeps see a killed run, and ``--resume`` continues it from its newest checkpoint all the same."""
    try:
        return trainer.train()
    except BaseException as e:
        state = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        try:
            trainer.run_dir.write_status(state, trainer.step, describe_error(e))
        except OSError:
            pass  # the original error says why; see above
        raise


def start_training(
    cfg: Config,
    out: Path,
    on_eval: Callable[[EvalResult], None] | None = None,
    *,
    model: Transformer | MLPModel | None = None,
    callbacks: Callbacks = None,
) -> tuple[Run, TrainResult]:
    """Create the run directory ``out`` (config, split, status) and train it (``model``: one the
    caller built, see :class:`Trainer`)."""
    train, test = make_split(make_dataset(cfg.task.op, cfg.task.p), cfg.task.train_frac, cfg.task.split_seed)
    run = Run.create(out, to_yaml(cfg), train, test)
    with run.lock():
        return run, _train(Trainer(cfg, run, on_eval, model=model, callbacks=callbacks))


def resume_training(
    path: Path,
    on_eval: Callable[[EvalResult], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    *,
    callbacks: Callbacks = None,
) -> tuple[Run, TrainResult]:
    """Continue a run from its newest valid checkpoint (bit-identical to never having stopped)."""
    run = Run.open(path)
    with run.lock():
        cfg = run.config
        state, warnings = load_newest_valid(run, map_location=resolve_device(cfg.train.device))
        for w in warnings:
            if on_warning:
                on_warning(w)
        trainer = Trainer(cfg, run, on_eval, callbacks=callbacks)
        trainer.load_state_dict(state)
        return run, _train(trainer)


class _TrainModule(types.ModuleType):
    """This subpackage, callable: ``groklab.train(...)`` is :func:`groklab.api.train` (DESIGN section 8
    fixes both the name ``gl.train`` and the subpackage ``groklab.train``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Run:
        from groklab.api import train

        return train(*args, **kwargs)

    @property
    def __signature__(self) -> Any:
        import inspect

        from groklab.api import train

        return inspect.signature(train)


sys.modules[__name__].__class__ = _TrainModule
