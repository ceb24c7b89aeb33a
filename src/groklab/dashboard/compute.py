"""The model at one saved step, taken apart through :mod:`groklab.analysis` (cached per file).

:func:`checkpoint_view` takes the model from :meth:`Run.model` (the one loader of weights) and
returns what the run page draws, in the task's own basis (:func:`~groklab.analysis.basis.basis_of`:
Z_p for add, the discrete log on Z_(p-1) for mul, ...): the embedding spectrum
(:func:`~groklab.analysis.fourier.embedding_spectrum`; None with the reason where the basis gives
tokens no place), the neuron frequencies and clusters
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

from groklab.analysis.basis import basis_of
from groklab.analysis.fourier import embedding_spectrum
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.views import frequency_plane
from groklab.dashboard.data import Signature, file_sig
from groklab.models.hooks import one_thread
from groklab.records import BasisRecord, NeuronAnalysis
from groklab.runs import Run

__all__ = ["CheckpointView", "Circle", "checkpoint_view", "circles"]


@dataclass(frozen=True)
class CheckpointView:
    """What the run page shows at one saved step, in the task's basis; lists index frequencies as k - 1."""

    step: int
    p: int
    basis: BasisRecord  # the Z_n the frequencies belong to (kind, n, generator)
    frequencies: list[int]  # 1..n//2 of the basis
    embedding_norms: list[float] | None  # [n_freq]: embedding_spectrum(W_E_tokens, basis); None with the reason
    embedding_reason: str | None  # why there is no spectrum (no one-to-one map)
    phi: list[int]  # [p] phi(token) in Z_n (-1 outside the map): where each token sits on a circle
    W_E_tokens: list[list[float]]  # [p][d_model]: for the circles
    neurons: NeuronAnalysis  # without its [d_mlp][n_freq] FVE table (not shown, and the largest part)


@dataclass(frozen=True)
class Circle:
    """The tokens the map places, in frequency k's plane: token ids, phi(token) and [x, y] each."""

    tokens: list[int]
    phi: list[int]
    xy: list[list[float]]


@st.cache_data(show_spinner="Analysing the checkpoint…", max_entries=128)
def _checkpoint_view(run_path: str, step: int, sig: Signature) -> CheckpointView:
    with one_thread():
        return _analyse(Run(Path(run_path)), step)


def _analyse(run: Run, step: int) -> CheckpointView:
    model = run.model(step)
    W = model.W_E_tokens.detach()
    basis = basis_of(run.dataset)
    why = basis.token_reason
    with torch.no_grad():
        neurons = analyze_neurons(model, run.dataset)
    phi = basis.map.phi_a.tolist() if basis.map is not None and why is None else [-1] * basis.p
    return CheckpointView(
        step=step,
        p=run.config.task.p,
        basis=basis.record(),
        frequencies=basis.frequencies,
        embedding_norms=embedding_spectrum(W, basis).tolist() if why is None else None,
        embedding_reason=why,
        phi=phi,
        W_E_tokens=W.tolist(),
        neurons=dataclasses.replace(neurons, fve=[]),
    )


def checkpoint_view(run: Run, step: int) -> CheckpointView:
    """The analysis of ``run``'s weights at ``step``; RunError (naming the nearest saved steps) for a
    step without weights, and for a damaged or ill-fitting file."""
    return _checkpoint_view(str(run.path), step, file_sig(run.weights_path(step), run.config_path))


def circles(run: Run, view: CheckpointView, ks: list[int]) -> dict[int, Circle]:
    """{k: the tokens in the plane of frequency k of the task's basis} for the ``ks`` of that basis;
    tokens outside the map (0 under a discrete log) are left out. Empty without a one-to-one map."""
    if view.embedding_reason is not None:
        return {}
    basis = basis_of(run.dataset)
    W = torch.tensor(view.W_E_tokens, dtype=torch.float64)
    tokens = [t for t, x in enumerate(view.phi) if x >= 0]
    with one_thread():
        planes = {k: frequency_plane(W, k, basis)[tokens].tolist() for k in ks if k in view.frequencies}
    return {k: Circle(tokens, [view.phi[t] for t in tokens], xy) for k, xy in planes.items()}
