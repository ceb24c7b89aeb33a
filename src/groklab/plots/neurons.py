"""Neuron figures: activation grids, FVE by frequency, cluster sizes, scores, neuron-to-logit maps.

Everything is in the task's basis: activation grids over (phi_a(a), phi_b(b)), frequencies of Z_n,
W_L rows over answers in phi_c order (see :mod:`groklab.analysis.basis`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from groklab.analysis.basis import Basis
from groklab.analysis.fourier import fourier_1d, freq_rows
from groklab.analysis.views import representative_neurons
from groklab.conventions import COLORS, phi_label
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, new_figure, note
from groklab.records import Cluster, NeuronAnalysis

__all__ = [
    "activation_grids",
    "cluster_order",
    "cluster_size_bars",
    "fve_heatmap",
    "neuron_logit_maps",
    "score_histogram",
    "unembed_spectrum_per_neuron",
]


def unembed_spectrum_per_neuron(W_L: Tensor, basis: Basis) -> Tensor:
    """[d_mlp, n//2]: each row of ``W_L [d_mlp, p]`` over the answer classes placed at phi_c(c)
    (``basis.class_order``), transformed over Z_n; entry (i, k-1) is the norm of neuron i's cos-k and
    sin-k coefficients (its one cos row for k = n/2 of an even n), as ``freq_norms`` per row."""
    sq = fourier_1d(W_L.detach()[:, basis.class_order.to(W_L.device)], 1).pow(2)  # [d_mlp, n]
    return torch.stack([sq[:, list(freq_rows(k, basis.n))].sum(1) for k in basis.frequencies], 1).sqrt()


def cluster_order(neurons: NeuronAnalysis) -> tuple[list[int], list[tuple[int, int, int]]]:
    """(neuron order, [(k, first row, last row + 1)]): clustered neurons first, cluster by cluster
    (k ascending, members by decreasing score), then the unclustered ones by frequency and score."""
    scores, freqs = neurons.neuron_score, neurons.neuron_frequency
    order: list[int] = []
    spans = []
    for c in neurons.clusters:
        members = sorted(c.neurons, key=lambda n: -scores[n])
        spans.append((c.k, len(order), len(order) + len(members)))
        order += members
    seen = set(order)
    rest = [n for n in range(len(scores)) if n not in seen]
    order += sorted(rest, key=lambda n: (freqs[n], -scores[n]))
    return order, spans


def activation_grids(
    grids: Sequence[tuple[int, int, float, np.ndarray]], title: str, a: str = "a (token)", b: str = "b (token)"
) -> Figure:
    """One panel per (k, neuron, score, activations [n, n] over (phi_a(a), phi_b(b))): images in the
    given order; ``a`` and ``b`` label the axes."""
    cols = min(len(grids), 4)
    rows = math.ceil(len(grids) / cols)
    fig, axes = new_figure(title, rows, cols, size=(3.4 * cols + 0.4, 3.2 * rows + 0.6))
    for ax, (k, n, score, grid) in zip(axes.flat, grids, strict=False):
        im = ax.imshow(grid, cmap="viridis", interpolation="nearest")
        ax.set_title(f"neuron {n}: k = {k}, FVE {score:.2f}", fontsize=9)
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label("activation (post-ReLU)", fontsize=8)
    for ax in list(axes.flat)[len(grids) :]:
        ax.set_axis_off()
    return fig


def fve_heatmap(
    fve: np.ndarray, order: Sequence[int], spans: Sequence[tuple[int, int, int]], title: str, xlabel: str
) -> Figure:
    """FVE_k(n) [neuron, k-1] with neurons (rows) in ``order``; cluster boundaries drawn; ``xlabel``
    names the frequencies' basis."""
    fve = np.asarray(fve, dtype=float)[list(order)]
    fig, axes = new_figure(title, size=(9, 6.5))
    ax = axes[0, 0]
    im = ax.imshow(fve, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1,
                   extent=(0.5, fve.shape[1] + 0.5, fve.shape[0] - 0.5, -0.5))  # fmt: skip
    for k, a, b in spans:
        ax.axhline(b - 0.5, color="w", lw=0.6)
        ax.annotate(f"k={k}", (fve.shape[1] + 0.5, (a + b) / 2), xytext=(3, 0), textcoords="offset points",
                    fontsize=7, va="center", annotation_clip=False)  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel("neuron (sorted by cluster, then frequency)")
    colorbar(fig, im, ax, "fraction of variance explained by k")
    return fig


def cluster_size_bars(
    clusters: Sequence[Cluster], min_size: float, d_mlp: int, key_freqs: Sequence[int], title: str, basis: str = "Z_p"
) -> Figure:
    """One bar per cluster (height = its size, in k order); the key-frequency threshold dashed;
    ``basis`` names the Z_n the frequencies belong to."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    ks = [c.k for c in clusters]
    sizes = [c.size for c in clusters]
    colors = [COLORS["key"] if k in set(key_freqs) else COLORS["other"] for k in ks]
    ax.bar([str(k) for k in ks], sizes, color=colors)
    ax.axhline(min_size, color="k", ls=":", lw=1, label=f"key frequency needs >= {min_size:g} neurons")
    n = sum(sizes)
    ax.set_xlabel(f"cluster frequency k of {basis} (key in red); {n} of {d_mlp} neurons clustered, {d_mlp - n} not")
    ax.set_ylabel("neurons in cluster (count)")
    ax.legend(fontsize=8)
    return fig


def score_histogram(scores: Sequence[float], threshold: float, title: str) -> Figure:
    """Histogram of each neuron's best FVE (its score), the cluster threshold dashed."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    ax.hist(scores, bins=np.linspace(0, 1, 41), color=COLORS["neutral"])
    ax.axvline(threshold, color=COLORS["key"], ls="--", label=f"cluster threshold {threshold:g}")
    ax.set_xlabel("neuron score: largest FVE over frequencies (fraction)")
    ax.set_ylabel("neurons (count)")
    ax.legend(fontsize=8)
    return fig


def neuron_logit_maps(
    spectrum: np.ndarray,
    order: Sequence[int],
    spans: Sequence[tuple[int, int, int]],
    rows: Sequence[tuple[int, int, np.ndarray]],
    title: str,
    xlabel: str = "output frequency k",
    c_axis: str = "answer c (token)",
) -> Figure:
    """Left: each neuron's W_L spectrum [neuron, k-1] (neurons in ``order``; ``xlabel`` names the
    basis); right: the W_L rows (neuron -> logit of answer c, ordered as ``c_axis`` says) of the
    neurons in ``rows`` [(k, neuron, row)]."""
    fig, axes = new_figure(title, 1, 2, size=(12, 5.5))
    ax = axes[0, 0]
    spec = np.asarray(spectrum, dtype=float)[list(order)]
    im = ax.imshow(spec, aspect="auto", interpolation="nearest", cmap="magma",
                   extent=(0.5, spec.shape[1] + 0.5, spec.shape[0] - 0.5, -0.5))  # fmt: skip
    for _, _, b in spans:
        ax.axhline(b - 0.5, color="w", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("neuron (sorted by cluster)")
    ax.set_title("W_L rows in the Fourier basis", fontsize=10)
    colorbar(fig, im, ax, "norm of cos k, sin k coefficients (logit per activation)")
    ax = axes[0, 1]
    for k, n, row in rows:
        ax.plot(np.arange(len(row)), row, lw=1.2, label=f"neuron {n} (k = {k})")
    ax.set_xlabel(c_axis)
    ax.set_ylabel("logit added per unit activation")
    ax.set_title("W_L rows of representative neurons", fontsize=10)
    if rows:
        ax.legend(fontsize=7)
    else:
        note(ax, "no neuron cluster, so no representative neurons")
    return fig


def _need_neurons(d: RunData) -> NeuronAnalysis:
    n = d.neurons
    if not n.defined:
        raise SkipFigure(n.reason or "neuron frequencies are not defined for this run")
    return n


# ------------------------------------------------------------------ registered figures


@figure(
    "neuron_activation_grids",
    "neurons",
    "Representative neurons",
    "Each neuron's activation over (a, b) is a periodic pattern of its cluster's frequency, "
    "depending on a and b through cos and sin of w_k a and w_k b.",
    at_step=True,
)
def _grids(d: RunData) -> Figure:
    n = _need_neurons(d)
    reps = representative_neurons(n, per_cluster=2)[:12]
    if not reps:
        raise SkipFigure(f"no neuron cluster (no neuron has FVE >= {n.threshold}), so no representatives")
    basis, rec = d.basis, d.basis_record
    table = basis.table(d.activations[1][basis.rows]).numpy()  # [n, n, d_mlp] over (phi_a(a), phi_b(b))
    grids = [(k, i, s, table[:, :, i]) for k, i, s in reps]
    a, b = (f"{phi_label(rec, x)} in {d.basis_name}" for x in "ab")
    title = f"Activations of the top neurons of each cluster at step {d.step} ({d.label})"
    return activation_grids(grids, title, a, b)


@figure(
    "neuron_fve_heatmap",
    "neurons",
    "Neuron FVE by frequency",
    "Clustered neurons have almost all their variance in a single frequency (one bright cell per row).",
    at_step=True,
)
def _fve(d: RunData) -> Figure:
    n = _need_neurons(d)
    order, spans = cluster_order(n)
    title = f"Fraction of each neuron's variance by frequency at step {d.step} ({d.label})"
    return fve_heatmap(np.asarray(n.fve), order, spans, title, d.freq_label)


@figure(
    "neuron_cluster_sizes",
    "neurons",
    "Neuron cluster sizes",
    "Most neurons belong to a handful of frequency clusters; clusters above the dotted line make the key frequencies.",
    at_step=True,
)
def _sizes(d: RunData) -> Figure:
    n = _need_neurons(d)
    if not n.clusters:
        raise SkipFigure(f"no neuron has FVE >= {n.threshold}, so there are no clusters")
    title = f"Neuron clusters at step {d.step} ({d.label})"
    return cluster_size_bars(n.clusters, n.min_cluster_size, n.d_mlp, n.key_frequencies, title, d.basis_name)


@figure(
    "neuron_scores",
    "neurons",
    "Neuron frequency scores",
    "A grokked model's neurons pile up near 1: almost every neuron is explained by one frequency.",
    at_step=True,
)
def _scores(d: RunData) -> Figure:
    n = _need_neurons(d)
    title = f"Best single-frequency FVE per neuron at step {d.step} ({d.label})"
    return score_histogram(n.neuron_score, n.threshold, title)


@figure(
    "neuron_logit_maps",
    "neurons",
    "Neuron-to-logit maps",
    "Each cluster's neurons write to the logits at their own frequency: W_L rows are waves cos(w_k c + phase).",
    at_step=True,
)
def _logit_maps(d: RunData) -> Figure:
    n = _need_neurons(d)
    order, spans = cluster_order(n)
    basis = d.basis
    W_L = d.checkpoint_model.W_L.detach()
    spec = unembed_spectrum_per_neuron(W_L, basis).numpy()
    reps = representative_neurons(n, per_cluster=1)[:6]
    classes = basis.class_order.to(W_L.device)
    rows = [(k, i, W_L[i, classes].double().numpy()) for k, i, _ in reps]
    c = phi_label(d.basis_record, "c")
    title = f"How neurons write to the logits at step {d.step} ({d.label})"
    xlabel = f"output {d.freq_label} (over answers {c})"
    return neuron_logit_maps(spec, order, spans, rows, title, xlabel, f"answer c, ordered by {c}")
