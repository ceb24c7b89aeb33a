"""What figures draw from: a run's typed analysis records, and arrays of its checkpoints computed
on first use.

:class:`RunData` reads (never writes) a run directory that has been analysed, through
:class:`groklab.runs.Run` only (config, metrics, split, analysis records, saved weights). Arrays
that need model internals (activations, attention patterns, per-sample losses over checkpoints) are
computed through :mod:`groklab.analysis` functions, and cached.

**Which checkpoint.** ``step`` is the checkpoint that the figures of one checkpoint show (spectra,
neurons, embeddings, attention, logits, weights, ablations); by default the analysed one
(``summary.analysed_step``), whose records are read as written. At another step the records of one
checkpoint (``fourier``, ``neurons``, ``ablation``) are recomputed there through the same analysis
functions, with the run's key frequencies held fixed (as the progress measures hold them), the
neuron clusters of that step, and the recorded number of random draws and the run's seed. Records
over training (``summary``, ``progress``, ``metrics``, ``fourier.over_checkpoints``) and the
checkpoints behind the figures over training are those the analysis covered, whatever ``step``.

**Which coordinates.** Every Fourier figure works in the task's own basis, :attr:`RunData.basis`
(:func:`groklab.analysis.basis.basis_of` of the run's dataset: the identity on Z_p for add, the
discrete logarithm on Z_(p-1) for mul, ...), and names it (:attr:`RunData.basis_name`). A measure
the records hold as None is skipped with the recorded reason, never drawn from another value.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from groklab.analysis.ablation import ablation_report
from groklab.analysis.basis import Basis, basis_of
from groklab.analysis.neurons import Model, analyze_neurons, eq_activations
from groklab.analysis.pipeline import fourier_record
from groklab.analysis.views import attention_patterns, per_sample_losses
from groklab.config import Config
from groklab.conventions import basis_name, frequency_label
from groklab.data import OPERATIONS, Dataset
from groklab.models import Transformer
from groklab.models.hooks import one_thread
from groklab.plots.registry import SkipFigure
from groklab.records import (
    AblationReport,
    Analysis,
    BasisRecord,
    FourierRecord,
    NeuronAnalysis,
)
from groklab.runs import Run, RunError

__all__ = ["RunData", "one_thread"]


class RunData:
    """A run's records and lazily computed arrays, for drawing the checkpoint at ``step`` (default:
    the analysed one). RunError when the run is not analysed, or has no weights at ``step`` (the
    message names the nearest saved steps)."""

    def __init__(self, run: Run | Path | str, device: str = "cpu", step: int | None = None) -> None:
        self.run = run if isinstance(run, Run) else Run.open(Path(run))
        self.device = device
        self.analysis: Analysis = self.run.analysis
        self.step: int = self.summary.analysed_step if step is None else int(step)
        self.warnings: list[str] = []
        if step is not None:
            _ = self.checkpoint_model  # a step without saved weights fails here, naming the nearest

    # -- records over training: as recorded (summary, progress, events, phases from the analysis) --
    summary = property(lambda self: self.analysis.summary)
    progress = property(lambda self: self.analysis.progress)
    events = property(lambda self: self.analysis.events)
    phases = property(lambda self: self.analysis.phases)
    keys = property(lambda self: self.analysis.key_frequencies)  # held fixed over training

    @cached_property
    def cfg(self) -> Config:
        return self.run.config

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        """The evaluation records of ``metrics.jsonl`` (step, train_loss, train_acc, ...)."""
        return self.run.metric_records()

    # -- records of one checkpoint: at ``step`` -----------------------------------------------------
    @property
    def at_analysed_step(self) -> bool:
        return self.step == self.summary.analysed_step

    @cached_property
    def fourier(self) -> FourierRecord:
        """Spectra at ``step`` (with the recorded spectra over checkpoints)."""
        if self.at_analysed_step:
            return self.analysis.fourier
        series = self.analysis.fourier.over_checkpoints
        return fourier_record(self.checkpoint_model, self.dataset.to(self.device), self.keys, series)

    @cached_property
    def neurons(self) -> NeuronAnalysis:
        """Neuron frequencies and clusters at ``step``."""
        if self.at_analysed_step:
            return self.analysis.neurons
        return analyze_neurons(self.checkpoint_model, self.dataset.to(self.device))

    @cached_property
    def ablation(self) -> AblationReport:
        """Ablations at ``step``: the run's key frequencies, the clusters of that step."""
        if self.at_analysed_step:
            return self.analysis.ablation
        n, recorded = self.neurons, self.analysis.ablation
        return ablation_report(
            self.checkpoint_model, self.dataset.to(self.device), self.run.split[1], self.keys, n.cluster_dict(),
            n.neuron_frequency or None, n_draws=recorded.neurons.cumulative.random.n_draws, seed=self.cfg.seed,
        )  # fmt: skip

    # -- the task ------------------------------------------------------------------------------
    @property
    def p(self) -> int:
        return self.cfg.task.p

    @cached_property
    def basis(self) -> Basis:
        """The task's basis: its structure map into Z_n and the analysed pairs (DESIGN section 6)."""
        return basis_of(self.dataset)

    @property
    def basis_record(self) -> BasisRecord:
        """The basis as the records name it ({kind, n, generator, reason})."""
        return self.summary.basis

    @property
    def basis_name(self) -> str:
        """ "Z_17 (identity)", "Z_16 (discrete log base 3)", ...: for titles and axis labels."""
        return basis_name(self.basis_record)

    @property
    def freq_label(self) -> str:
        """ "frequency k of Z_16 (discrete log base 3)": the frequency axis of every Fourier figure."""
        return frequency_label(self.basis_record)

    @property
    def label(self) -> str:
        c = self.cfg
        return f"{c.name}: {OPERATIONS[c.task.op].symbol} mod {c.task.p}"

    @property
    def dataset(self) -> Dataset:
        return self.run.dataset

    @property
    def full_table(self) -> bool:
        """Whether every one of the p^2 pairs is a valid input (not so for div)."""
        return self.dataset.n == self.p * self.p

    @cached_property
    def test_rows(self) -> Tensor:
        _, test = self.run.split
        return self.dataset.rows(torch.as_tensor(test, dtype=torch.long))

    # -- models and checkpoints ------------------------------------------------------------------
    @cached_property
    def checkpoint_model(self) -> Model:
        """The model saved at ``step``, in eval mode."""
        return self.run.model(self.step, self.device)

    def model_with(self, state: dict[str, Tensor]) -> Model:
        """A model of the run's architecture holding ``state``, in eval mode."""
        model = self.run.build_model(self.device)
        model.load_state_dict(state)
        return model

    @cached_property
    def states(self) -> list[tuple[int, dict[str, Tensor]]]:
        """(step, model state) of every loadable saved step up to the analysed one (the checkpoints
        the progress measures cover); a file that does not load is skipped with a warning."""
        last = self.summary.analysed_step
        steps = [s for s in self.run.steps if s <= last]
        states = list(self.run.states(steps, warn=self.warnings.append))
        if not states:
            raise RunError(f"{self.run.path}: no valid checkpoint")
        return states

    @cached_property
    def activations(self) -> tuple[Tensor, Tensor, Tensor]:
        """(pre, post, logits) of the last MLP at `=` for every valid input at ``step``:
        [n, d_mlp] x2, [n, p]."""
        pre, post, logits = eq_activations(self.checkpoint_model, self.dataset.tokens)
        return pre.cpu(), post.cpu(), logits.cpu()

    @cached_property
    def attention(self) -> Tensor:
        """[n_layers, n, n_heads, 3, 3] attention patterns at ``step``."""
        model = self.checkpoint_model
        if not isinstance(model, Transformer):
            raise SkipFigure(f"{type(model).__name__} has no attention")
        return attention_patterns(model, self.dataset.tokens)

    @cached_property
    def test_losses(self) -> tuple[list[int], np.ndarray]:
        """(checkpoint steps, per-sample test loss [n_checkpoints, n_test] in nats)."""
        model = self.model_with(self.states[-1][1])
        tokens = self.dataset.tokens[self.test_rows].to(self.device)
        labels = self.dataset.labels[self.test_rows]
        rows = []
        with torch.no_grad(), one_thread():
            for _, state in self.states:
                model.load_state_dict(state)
                rows.append(per_sample_losses(model.forward_last(tokens), labels).numpy())
        return [s for s, _ in self.states], np.stack(rows)
