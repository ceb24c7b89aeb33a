"""The model at one checkpoint, taken apart through :mod:`groklab.analysis` (cached per file).

:func:`checkpoint_view` loads a checkpoint, rebuilds the model from the run's config and returns
plain lists: the embedding spectrum (:func:`~groklab.analysis.fourier.embedding_spectrum`), the
neuron frequencies and clusters (:func:`~groklab.analysis.neurons.analyze_neurons`) and the token
embeddings for the key-frequency circles (:func:`circles`, through
:func:`~groklab.analysis.views.frequency_plane`, as the figures draw them). The cache key is the checkpoint's
and the config's (mtime, size), so a checkpoint is analysed once per process, and a damaged one
raises RunError (not cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from groklab.analysis.fourier import embedding_spectrum, frequencies
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.views import frequency_plane
from groklab.dashboard.data import Signature, file_sig
from groklab.data import make_dataset
from groklab.models import build_model
from groklab.models.hooks import one_thread
from groklab.runs import Run, RunError
from groklab.train import load_checkpoint, run_config

__all__ = ["CheckpointView", "checkpoint_view", "circles"]


@dataclass(frozen=True)
class CheckpointView:
    """What the run page shows at one checkpoint; lists index frequencies as k - 1."""

    step: int
    p: int
    frequencies: list[int]  # 1..(p-1)//2
    embedding_norms: list[float]  # [n_freq]: embedding_spectrum(W_E_tokens)
    embedding_key_frequencies: list[int]
    W_E_tokens: list[list[float]]  # [p][d_model]: for the circles
    neurons: dict[str, Any]  # NeuronAnalysis.to_dict() without the [d_mlp x n_freq] FVE table


@st.cache_data(show_spinner="Analysing the checkpoint…", max_entries=128)
def _checkpoint_view(run_path: str, step: int, ckpt_path: str, sig: Signature) -> CheckpointView:
    with one_thread():
        return _analyse_checkpoint(run_path, step, ckpt_path)


def _analyse_checkpoint(run_path: str, step: int, ckpt_path: str) -> CheckpointView:
    run = Run(Path(run_path))
    cfg = run_config(run)
    state = load_checkpoint(Path(ckpt_path))
    model = build_model(cfg.model, cfg.task.p)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise RunError(f"{ckpt_path}: weights do not fit the run's config ({str(e).splitlines()[0]})") from None
    W = model.W_E_tokens.detach()
    with torch.no_grad():
        neurons = analyze_neurons(model, make_dataset(cfg.task.op, cfg.task.p)).to_dict()
    neurons.pop("fve", None)  # [d_mlp x n_freq]: not shown, and the largest part of the record
    return CheckpointView(
        step=step,
        p=cfg.task.p,
        frequencies=frequencies(cfg.task.p),
        embedding_norms=embedding_spectrum(W).tolist(),
        embedding_key_frequencies=list(neurons["embedding_key_frequencies"]),
        W_E_tokens=W.tolist(),
        neurons=neurons,
    )


def checkpoint_view(run: Run, step: int) -> CheckpointView:
    """The analysis of ``run``'s checkpoint at ``step``; RunError for a missing or damaged one."""
    path = run.checkpoint_path(step)
    if not path.is_file():
        raise RunError(f"{path}: missing")
    return _checkpoint_view(str(run.path), step, str(path), file_sig(path, run.config_path))


def circles(view: CheckpointView, ks: list[int]) -> dict[int, list[list[float]]]:
    """{k: [p][2] token coordinates in the plane of frequency k} for the ``ks`` that exist for this p."""
    W = torch.tensor(view.W_E_tokens, dtype=torch.float64)
    with one_thread():
        return {k: frequency_plane(W, k).tolist() for k in ks if k in view.frequencies}
