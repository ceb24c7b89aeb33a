"""Embedding figures: tokens on the circle of each key frequency, PCA, geometry over checkpoints.

The circles are drawn in the task's basis: token t sits at angle w_k phi(t) in the plane of
frequency k of Z_n (phi the structure map: the identity for add, the discrete log for mul), and
tokens outside the map (0 under a discrete log) are left out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from groklab.analysis.views import cosine_similarity, embedding_pca, frequency_plane, pick_steps
from groklab.conventions import phi_label
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, new_figure

__all__ = ["MAX_CIRCLES", "draw_circle", "embedding_circles", "embedding_geometry", "embedding_pca_figure"]

MAX_CIRCLES = 6
TOKEN_CMAP = "twilight"  # cyclic: phi = 0 and phi = n-1 get neighbouring colours


def inside(phi: np.ndarray) -> np.ndarray:
    """The tokens a structure map places (``phi [p]``, -1 outside the map), ascending."""
    return np.nonzero(np.asarray(phi) >= 0)[0]


def draw_circle(ax: Axes, coords: np.ndarray, k: int, phi: np.ndarray, n: int) -> None:
    """Tokens in the map's domain (scatter gid ``tokens``, in token order, coloured by phi(t)) at
    their coordinates ``coords [p, 2]`` in frequency k's plane of Z_n, joined in the order in which
    a perfect circle visits them (by k phi(t) mod n); tokens outside the map (phi = -1) left out."""
    coords, phi = np.asarray(coords, dtype=float), np.asarray(phi)
    tokens = inside(phi)
    ring = tokens[np.argsort((k * phi[tokens]) % n, kind="stable")]
    loop = np.append(ring, ring[0])
    ax.plot(coords[loop, 0], coords[loop, 1], color="#bbbbbb", lw=0.6, zorder=1)
    ax.scatter(coords[tokens, 0], coords[tokens, 1], c=phi[tokens], cmap=TOKEN_CMAP, vmin=0, vmax=n, s=14,
               zorder=2, gid="tokens")  # fmt: skip
    for t in tokens[:: max(1, len(tokens) // 8)]:
        ax.annotate(str(t), coords[t], fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("cos-k direction (embedding units)")
    ax.set_ylabel("sin-k direction (embedding units)")


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def embedding_circles(
    planes: Mapping[int, np.ndarray], phi: np.ndarray, n: int, title: str, phi_name: str = "x"
) -> Figure:
    """One panel per frequency k in ``planes`` ({k: coordinates [p, 2]}, see ``frequency_plane``) of
    Z_n, tokens placed by ``phi [p]`` (how labels write phi(x): ``phi_name``)."""
    rows, cols = _grid(len(planes))
    fig, axes = new_figure(title, rows, cols, size=(4.2 * cols, 4.0 * rows + 0.6))
    for ax, (k, coords) in zip(axes.flat, planes.items(), strict=False):
        draw_circle(ax, coords, k, phi, n)
        ax.set_title(f"k = {k}")
    for ax in list(axes.flat)[len(planes) :]:
        ax.set_axis_off()
    sm = axes.flat[0].collections[-1] if planes else None
    if sm is not None:
        colorbar(fig, sm, axes, f"{phi_name} in Z_{n} (token x labelled)")
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


def need_circles(d: RunData, most: int = MAX_CIRCLES) -> list[int]:
    """The key frequencies to draw as circles (at most ``most``), or SkipFigure with the reason:
    tokens need a one-to-one map to have a place on a circle, and circles need key frequencies."""
    if d.basis.token_reason is not None:
        raise SkipFigure(d.basis.token_reason)
    if not d.keys:
        raise SkipFigure(d.summary.key_frequencies_reason or "no key frequencies were found for this run")
    return list(d.keys)[:most]


def token_phi(d: RunData) -> np.ndarray:
    """[p] phi(t) of every token (its place in Z_n; -1 outside the map). Needs a structure map."""
    assert d.basis.map is not None, d.basis.reason
    return np.asarray(d.basis.map.phi_a)


def x_label(d: RunData) -> str:
    """phi(x) as labels write it: "x", "log x" (the token axis of the embedding)."""
    return phi_label(d.basis_record, "a").replace("a", "x")


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
    ks = need_circles(d)
    W = d.checkpoint_model.W_E_tokens
    planes = {k: frequency_plane(W, k, d.basis).numpy() for k in ks}
    which = (
        "each key frequency's" if len(ks) == len(d.keys) else f"the first {len(ks)} of {len(d.keys)} key frequencies'"
    )
    title = f"Token embeddings in {which} plane of {d.basis_name} at step {d.step} ({d.label})"
    return embedding_circles(planes, token_phi(d), d.basis.n, title, x_label(d))


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
