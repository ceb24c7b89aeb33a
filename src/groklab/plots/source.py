"""What figures draw from: a run's records, and arrays of its checkpoints computed on first use.

:class:`RunData` reads (never writes) a run directory that has been analysed. Records come from
``metrics.jsonl`` and ``analysis/``; arrays that need model internals (activations, attention
patterns, per-sample losses over checkpoints) are computed through :mod:`groklab.analysis`
functions at the checkpoint the analysis used (``summary.json["analysed_step"]``), and cached.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from groklab.analysis.neurons import Model, eq_activations
from groklab.analysis.pipeline import load_states
from groklab.analysis.views import attention_patterns, per_sample_losses
from groklab.config import Config
from groklab.data import OPERATIONS, Dataset, make_dataset
from groklab.models import Transformer, build_model
from groklab.models.hooks import one_thread
from groklab.plots.registry import SkipFigure
from groklab.runs import Run, RunError
from groklab.train import run_config

__all__ = ["RunData", "one_thread"]


class RunData:
    """A run's records and lazily computed arrays, for drawing. Raises RunError if not analysed."""

    def __init__(self, run: Run | Path | str, device: str = "cpu") -> None:
        self.run = run if isinstance(run, Run) else Run.open(Path(run))
        self.device = device
        self.summary: dict[str, Any] = self.run.analysis("summary")
        self.warnings: list[str] = []

    # -- records -----------------------------------------------------------------------------
    @cached_property
    def cfg(self) -> Config:
        return run_config(self.run)

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        return self.run.metrics()

    @cached_property
    def progress(self) -> list[dict[str, Any]]:
        return self.run.analysis("progress")

    @cached_property
    def fourier(self) -> dict[str, Any]:
        return self.run.analysis("fourier")

    @cached_property
    def neurons(self) -> dict[str, Any]:
        return self.run.analysis("neurons")

    @cached_property
    def ablation(self) -> dict[str, Any]:
        return self.run.analysis("ablation")

    @property
    def p(self) -> int:
        return self.cfg.task.p

    @property
    def keys(self) -> list[int]:
        return list(self.summary.get("key_frequencies") or [])

    @property
    def events(self) -> dict[str, Any]:
        return self.summary.get("events") or {}

    @property
    def phases(self) -> dict[str, Any]:
        return self.summary.get("phases") or {}

    @property
    def additive(self) -> str | None:
        return OPERATIONS[self.cfg.task.op].additive

    @property
    def label(self) -> str:
        c = self.cfg
        return f"{c.name}: {OPERATIONS[c.task.op].symbol} mod {c.task.p}"

    # -- the task ------------------------------------------------------------------------------
    @cached_property
    def dataset(self) -> Dataset:
        return make_dataset(self.cfg.task.op, self.cfg.task.p)

    @property
    def full_table(self) -> bool:
        """Whether every one of the p^2 pairs is a valid input (not so for div)."""
        return self.dataset.n == self.p * self.p

    @cached_property
    def test_rows(self) -> Tensor:
        _, test = self.run.split()
        return self.dataset.rows(torch.as_tensor(test, dtype=torch.long))

    # -- checkpoints ---------------------------------------------------------------------------
    @cached_property
    def states(self) -> list[tuple[int, dict[str, Tensor]]]:
        """(step, model state) of every loadable checkpoint up to the analysed step."""
        last = self.summary.get("analysed_step")
        states = load_states(self.run, self.warnings.append)
        states = [(s, st) for s, st in states if last is None or s <= last]
        if not states:
            raise RunError(f"{self.run.path}: no valid checkpoint")
        return states

    def model(self, state: dict[str, Tensor] | None = None) -> Model:
        """A model holding ``state`` (default: the analysed checkpoint), in eval mode."""
        m = build_model(self.cfg.model, self.p).to(self.device)
        m.load_state_dict(state if state is not None else self.states[-1][1])
        return m.eval()

    @cached_property
    def final_model(self) -> Model:
        return self.model()

    @cached_property
    def activations(self) -> tuple[Tensor, Tensor, Tensor]:
        """(pre, post, logits) of the last MLP at `=` for every valid input: [n, d_mlp] x2, [n, p]."""
        pre, post, logits = eq_activations(self.final_model, self.dataset.tokens)
        return pre.cpu(), post.cpu(), logits.cpu()

    @cached_property
    def attention(self) -> Tensor:
        """[n_layers, n, n_heads, 3, 3] attention patterns of the analysed checkpoint."""
        if not isinstance(self.final_model, Transformer):
            raise SkipFigure(f"{type(self.final_model).__name__} has no attention")
        return attention_patterns(self.final_model, self.dataset.tokens)

    @cached_property
    def test_losses(self) -> tuple[list[int], np.ndarray]:
        """(checkpoint steps, per-sample test loss [n_checkpoints, n_test] in nats)."""
        model = self.model()
        tokens = self.dataset.tokens[self.test_rows].to(self.device)
        labels = self.dataset.labels[self.test_rows]
        rows = []
        with torch.no_grad(), one_thread():
            for _, state in self.states:
                model.load_state_dict(state)
                rows.append(per_sample_losses(model.forward_last(tokens), labels).numpy())
        return [s for s, _ in self.states], np.stack(rows)
