"""The model at one saved step, taken apart through :mod:`groklab.analysis` (cached per file).

:func:`checkpoint_view` takes the model from :meth:`Run.model` (the one loader of weights) and
returns what the run page draws: the embedding spectrum
(:func:`~groklab.analysis.fourier.embedding_spectrum`), the neuron frequencies and clusters
(:func:`~groklab.analysis.neurons.analyze_neurons`, a typed
:class:`~groklab.records.NeuronAnalysis`) and the token embeddings for the key-frequency circles
(:func:`circles`, through :func:`~groklab.analysis.views.frequency_plane`, as the figures draw
them). The cache key is the weights file's and the config's (mtime, size), so a step is analysed
once per process; a missing, damaged or ill-fitting file raises RunError (not cached).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from groklab.analysis.fourier import embedding_spectrum, frequencies
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.views import frequency_plane
from groklab.dashboard.data import Signature, file_sig
from groklab.models.hooks import one_thread
from groklab.records import NeuronAnalysis
from groklab.runs import Run

__all__ = ["CheckpointView", "checkpoint_view", "circles"]


@dataclass(frozen=True)
class CheckpointView:
    """What the run page shows at one saved step; lists index frequencies as k - 1."""

    step: int
    p: int
    frequencies: list[int]  # 1..(p-1)//2
    embedding_norms: list[float]  # [n_freq]: embedding_spectrum(W_E_tokens)
    W_E_tokens: list[list[float]]  # [p][d_model]: for the circles
    neurons: NeuronAnalysis  # without its [d_mlp][n_freq] FVE table (not shown, and the largest part)


@st.cache_data(show_spinner="Analysing the checkpoint…", max_entries=128)
def _checkpoint_view(run_path: str, step: int, sig: Signature) -> CheckpointView:
    with one_thread():
        return _analyse(Run(Path(run_path)), step)


def _analyse(run: Run, step: int) -> CheckpointView:
    model = run.model(step)
    W = model.W_E_tokens.detach()
    with torch.no_grad():
        neurons = analyze_neurons(model, run.dataset)
    return CheckpointView(
        step=step,
        p=run.config.task.p,
        frequencies=frequencies(run.config.task.p),
        embedding_norms=embedding_spectrum(W).tolist(),
        W_E_tokens=W.tolist(),
        neurons=dataclasses.replace(neurons, fve=[]),
    )


def checkpoint_view(run: Run, step: int) -> CheckpointView:
    """The analysis of ``run``'s weights at ``step``; RunError (naming the nearest saved steps) for a
    step without weights, and for a damaged or ill-fitting file."""
    return _checkpoint_view(str(run.path), step, file_sig(run.weights_path(step), run.config_path))


def circles(view: CheckpointView, ks: list[int]) -> dict[int, list[list[float]]]:
    """{k: [p][2] token coordinates in the plane of frequency k} for the ``ks`` that exist for this p."""
    W = torch.tensor(view.W_E_tokens, dtype=torch.float64)
    with one_thread():
        return {k: frequency_plane(W, k).tolist() for k in ks if k in view.frequencies}
