"""Embedding figures: tokens on the circle of each key frequency, PCA, geometry over checkpoints."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from groklab.analysis.views import cosine_similarity, embedding_pca, frequency_plane, pick_steps
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, new_figure

__all__ = ["MAX_CIRCLES", "draw_circle", "embedding_circles", "embedding_geometry", "embedding_pca_figure"]

MAX_CIRCLES = 6
TOKEN_CMAP = "twilight"  # cyclic: token 0 and token p-1 get neighbouring colours


def draw_circle(ax: Axes, coords: np.ndarray, k: int, p: int) -> None:
    """Tokens (coloured by x, scatter gid ``tokens``) at their coordinates in frequency k's plane,
    joined in the order x, x + k^-1, ... in which a perfect circle visits them (by k x mod p)."""
    coords = np.asarray(coords, dtype=float)
    x = np.arange(p)
    ring = np.argsort((k * x) % p, kind="stable")
    loop = np.append(ring, ring[0])
    ax.plot(coords[loop, 0], coords[loop, 1], color="#bbbbbb", lw=0.6, zorder=1)
    ax.scatter(coords[:, 0], coords[:, 1], c=x, cmap=TOKEN_CMAP, vmin=0, vmax=p, s=14, zorder=2, gid="tokens")
    for t in range(0, p, max(1, p // 8)):
        ax.annotate(str(t), coords[t], fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("cos-k direction (embedding units)")
    ax.set_ylabel("sin-k direction (embedding units)")


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def embedding_circles(planes: Mapping[int, np.ndarray], p: int, title: str) -> Figure:
    """One panel per frequency k in ``planes`` ({k: coordinates [p, 2]}, see ``frequency_plane``)."""
    rows, cols = _grid(len(planes))
    fig, axes = new_figure(title, rows, cols, size=(4.2 * cols, 4.0 * rows + 0.6))
    for ax, (k, coords) in zip(axes.flat, planes.items(), strict=False):
        draw_circle(ax, coords, k, p)
        ax.set_title(f"k = {k}")
    for ax in list(axes.flat)[len(planes) :]:
        ax.set_axis_off()
    sm = axes.flat[0].collections[-1] if planes else None
    if sm is not None:
        colorbar(fig, sm, axes, "token x")
    return fig


def embedding_pca_figure(coords: np.ndarray, explained: np.ndarray, title: str) -> Figure:
    """Tokens on principal components (1, 2) and (3, 4) of the embedding, coloured by token."""
    coords, explained = np.asarray(coords, dtype=float), np.asarray(explained, dtype=float)
    n = coords.shape[1]
    pairs = [(i, i + 1) for i in range(0, n - 1, 2)][:2]
    fig, axes = new_figure(title, 1, len(pairs), size=(5.0 * len(pairs) + 1, 5))
    p = coords.shape[0]
    sc = None
    for ax, (i, j) in zip(axes.flat, pairs, strict=True):
        sc = ax.scatter(coords[:, i], coords[:, j], c=np.arange(p), cmap=TOKEN_CMAP, s=14, gid=f"pc{i + 1}-pc{j + 1}")
        ax.set_xlabel(f"PC{i + 1} ({100 * explained[i]:.1f}% of variance; embedding units)")
        ax.set_ylabel(f"PC{j + 1} ({100 * explained[j]:.1f}% of variance; embedding units)")
        ax.set_aspect("equal", adjustable="datalim")
    if sc is not None:
        colorbar(fig, sc, axes, "token x")
    return fig


def embedding_geometry(sims: Mapping[int, np.ndarray], title: str) -> Figure:
    """Cosine-similarity matrices [p, p] of the token embeddings, one panel per checkpoint step."""
    rows, cols = _grid(len(sims))
    fig, axes = new_figure(title, rows, cols, size=(3.6 * cols + 1, 3.4 * rows + 0.6))
    im = None
    for ax, (step, S) in zip(axes.flat, sims.items(), strict=False):
        im = ax.imshow(S, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"step {step}", fontsize=10)
        ax.set_xlabel("token y")
        ax.set_ylabel("token x")
    for ax in list(axes.flat)[len(sims) :]:
        ax.set_axis_off()
    if im is not None:
        colorbar(fig, im, axes, "cosine similarity of embeddings")
    return fig


def circle_frequencies(keys: Sequence[int]) -> list[int]:
    return list(keys)[:MAX_CIRCLES]


# ------------------------------------------------------------------ registered figures


@figure(
    "embedding_circles",
    "embeddings",
    "Key-frequency circles",
    "In the plane of each key frequency k the tokens sit on a circle at angles w_k x: the model "
    "represents x by cos(w_k x) and sin(w_k x).",
    at_step=True,
)
def _circles(d: RunData) -> Figure:
    ks = circle_frequencies(d.keys)
    if not ks:
        raise SkipFigure("no key frequencies were found for this run")
    W = d.checkpoint_model.W_E_tokens
    planes = {k: frequency_plane(W, k).numpy() for k in ks}
    which = (
        "each key frequency's" if len(ks) == len(d.keys) else f"the first {len(ks)} of {len(d.keys)} key frequencies'"
    )
    return embedding_circles(planes, d.p, f"Token embeddings in {which} plane at step {d.step} ({d.label})")


@figure(
    "embedding_pca",
    "embeddings",
    "PCA of the embedding",
    "The leading principal components come in pairs that draw circles: each pair is one key frequency's cos and sin.",
    at_step=True,
)
def _pca(d: RunData) -> Figure:
    coords, frac = embedding_pca(d.checkpoint_model.W_E_tokens, 4)
    if coords.shape[1] < 2:
        raise SkipFigure("the embedding has fewer than two dimensions")
    return embedding_pca_figure(
        coords.numpy(), frac.numpy(), f"Principal components of W_E at step {d.step} ({d.label})"
    )


@figure(
    "embedding_geometry",
    "embeddings",
    "Embedding geometry over training",
    "Similarity between token embeddings turns from noise into bands that depend only on x - y: "
    "the circular structure forming.",
)
def _geometry(d: RunData) -> Figure:
    ev = d.events
    steps = pick_steps([s for s, _ in d.states], 6, [ev.memorization_step, ev.grokking_step])
    states = dict(d.states)
    sims = {s: cosine_similarity(d.model_with(states[s]).W_E_tokens).numpy() for s in steps}
    return embedding_geometry(sims, f"Cosine similarity of token embeddings over checkpoints ({d.label})")
