"""Ablation figures, drawn from ``ablation.json``: key frequencies vs. random control, the cumulative
neuron ablation against random orders, frequency clusters, heads and single-neuron importance."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

from groklab.conventions import COLORS
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import klist, log_axis, new_figure
from groklab.records import (
    ClusterAblation,
    CumulativeAblation,
    FrequencyAblation,
    FrequencyDraw,
    GroupAblation,
    HeadAblation,
    NeuronRow,
    Score,
)

__all__ = ["cluster_ablation", "cumulative_ablation", "frequency_ablation", "head_ablation", "neuron_importance"]

KEY, CONTROL, BASE = COLORS["key"], COLORS["other"], COLORS["intact"]


def frequency_ablation(freq: FrequencyAblation, title: str, basis: str = "Z_p") -> Figure:
    """Test accuracy and loss on the pairs the ablation scores (``freq.pairs``): intact model
    (``freq.baseline``), key frequencies of ``basis`` removed from W_E, and random non-key
    frequencies removed (bar = mean over draws, dots = each draw). Bars in that order."""
    fig, axes = new_figure(title, 1, 2, size=(10, 4.8))
    draws = freq.control.draws
    labels = [
        "intact",
        f"key k removed\n{klist(freq.key.frequencies, 4)}",
        f"{freq.control.n_frequencies} random k removed\n({len(draws)} draws)",
    ]
    panels: tuple[tuple[str, Callable[[Score | FrequencyDraw], float]], ...] = (
        ("test accuracy (fraction)", lambda s: s.test_acc),
        ("test loss (nats, log scale)", lambda s: s.test_loss),
    )
    for i, (ax, (ylabel, score)) in enumerate(zip(axes.flat, panels, strict=True)):
        ctrl = [score(d) for d in draws]
        heights = [score(freq.baseline), score(freq.key), float(np.mean(ctrl)) if ctrl else np.nan]
        bars = ax.bar(labels, heights, color=[BASE, KEY, CONTROL])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        if ctrl:
            ax.scatter(np.full(len(ctrl), 2.0) + np.linspace(-0.2, 0.2, len(ctrl)), ctrl, color="k", s=10, zorder=3)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(f"frequencies of {basis} removed from W_E\nscored on {freq.pairs}", fontsize=8)
        if i == 1:
            log_axis(ax, "y")
        else:
            ax.set_ylim(0, 1.05)
    return fig


def cumulative_ablation(cum: CumulativeAblation, title: str) -> Figure:
    """Test accuracy (left) and loss (right) after mean-ablating the n most important neurons (line
    gid ``importance``) against random orders (mean line gid ``random mean``; band: min to max over
    draws for accuracy, mean to mean + std for loss)."""
    fig, axes = new_figure(title, 1, 2, size=(11, 4.8))
    r = cum.random
    loss_mean = np.asarray(r.test_loss_mean)
    panels = (
        (axes[0, 0], cum.n_ablated, cum.test_acc, r.test_acc_mean, (r.test_acc_min, r.test_acc_max), "min to max"),
        (axes[0, 1], cum.loss_n_ablated, cum.test_loss, r.test_loss_mean,
         (loss_mean, loss_mean + np.asarray(r.test_loss_std)), "mean to mean + std"),
    )  # fmt: skip
    for ax, x, y, mean, (lo, hi), band in panels:
        label = f"random order ({band}, {r.n_draws} draws)"
        ax.fill_between(r.n_ablated, lo, hi, color=CONTROL, alpha=0.35, lw=0, label=label)
        ax.plot(r.n_ablated, mean, color=CONTROL, lw=1.2, gid="random mean", label="random order (mean)")
        ax.plot(x, y, color=KEY, lw=1.8, gid="importance", label="most important first")
        ax.set_xlabel("neurons mean-ablated (count)")
        log_axis(ax, "x", symlog=True)
    axes[0, 0].set_ylabel("test accuracy (fraction)")
    axes[0, 1].set_ylabel("test loss (nats, log scale)")
    log_axis(axes[0, 1], "y")
    ax0, n = axes[0, 0], cum.n_to_below_half
    ax0.axhline(0.5, color="k", ls=":", lw=0.8)
    if n is not None:
        ax0.axvline(n, color=KEY, ls="--", lw=1, label=f"{n} neurons break it (< 50%)")
    ax0.legend(fontsize=7)
    axes[0, 1].legend(fontsize=7)
    return fig


def cluster_ablation(
    clusters: Sequence[ClusterAblation], all_clusters: GroupAblation, baseline_acc: float, title: str
) -> Figure:
    """Per frequency cluster: test accuracy with the cluster mean-ablated (red bars, gid
    ``cluster``) beside random groups of the same size (grey bars, mean with std error bars)."""
    fig, axes = new_figure(title, size=(max(6.0, 1.2 * len(clusters) + 3), 4.8))
    ax = axes[0, 0]
    names = [f"k = {c.k}\n({c.size})" for c in clusters] + [f"all clusters\n({all_clusters.size})"]
    x = np.arange(len(names))
    ablated = [c.ablated.test_acc for c in clusters] + [all_clusters.test_acc]
    rmean = [c.random.test_acc.mean for c in clusters]
    rstd = [c.random.test_acc.std for c in clusters]
    ax.bar(x - 0.2, ablated, 0.4, color=KEY, label="cluster ablated", gid="cluster")
    ax.bar(x[: len(clusters)] + 0.2, rmean, 0.4, yerr=rstd, color=CONTROL, capsize=3,
           label="random group of the same size", gid="random")  # fmt: skip
    ax.axhline(baseline_acc, color=BASE, ls="--", lw=1, label=f"intact ({baseline_acc:.3f})")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_xlabel("mean-ablated group (neurons in it)")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def head_ablation(heads: Sequence[HeadAblation], baseline_acc: float, title: str) -> Figure:
    """Test accuracy with each head's output replaced by its mean (one bar per head, in order)."""
    fig, axes = new_figure(title, size=(max(5.0, 1.0 * len(heads) + 3), 4.5))
    ax = axes[0, 0]
    multi = len({h.layer for h in heads}) > 1
    names = [f"L{h.layer}H{h.head}" if multi else f"head {h.head}" for h in heads]
    bars = ax.bar(names, [h.test_acc for h in heads], color=COLORS["test"])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.axhline(baseline_acc, color=BASE, ls="--", lw=1, label=f"intact ({baseline_acc:.3f})")
    ax.set_xlabel("mean-ablated attention head")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8)
    return fig


def neuron_importance(top: Sequence[NeuronRow], title: str) -> Figure:
    """Rise in test loss when each of the most important neurons is mean-ablated alone (bars in
    decreasing order)."""
    fig, axes = new_figure(title, size=(10, 4.5))
    ax = axes[0, 0]
    names = [f"{t.neuron}\nk={t.frequency}" for t in top]
    ax.bar(range(len(top)), [t.delta_loss for t in top], color=KEY)
    ax.set_xticks(range(len(top)), names, fontsize=7)
    ax.set_xlabel("neuron (index, its frequency)")
    ax.set_ylabel("rise in test loss when ablated alone (nats)")
    return fig


# ------------------------------------------------------------------ registered figures


@figure(
    "ablation_frequencies",
    "ablations",
    "Key-frequency ablation",
    "Removing the few key frequencies from W_E destroys test accuracy while removing as many random "
    "frequencies does nothing.",
    at_step=True,
)
def _freq(d: RunData) -> Figure:
    a = d.ablation
    if a.frequency is None:
        raise SkipFigure(a.frequency_reason or "no frequency ablation in ablation.json")
    title = f"Ablating frequencies of {d.basis_name} from the embedding at step {d.step} ({d.label})"
    return frequency_ablation(a.frequency, title, d.basis_name)


@figure(
    "ablation_cumulative",
    "ablations",
    "Cumulative neuron ablation",
    "Ablating neurons most important first (red) breaks the model far sooner than random orders "
    "(grey band): the algorithm lives in a minority of neurons.",
    at_step=True,
)
def _cum(d: RunData) -> Figure:
    return cumulative_ablation(
        d.ablation.neurons.cumulative, f"Mean-ablating neurons cumulatively at step {d.step} ({d.label})"
    )


@figure(
    "ablation_clusters",
    "ablations",
    "Cluster ablation",
    "Each frequency cluster (red) matters far more than a random group of as many neurons (grey); "
    "ablating every cluster at once should leave little accuracy.",
    at_step=True,
)
def _clusters(d: RunData) -> Figure:
    a = d.ablation
    n = a.neurons
    if not n.clusters:
        raise SkipFigure("no neuron clusters to ablate")
    title = f"Mean-ablating frequency clusters at step {d.step} ({d.label})"
    return cluster_ablation(n.clusters, n.all_clusters, a.baseline.test_acc, title)


@figure(
    "ablation_heads",
    "ablations",
    "Head ablation",
    "Bars far below the dashed line are heads the algorithm needs to bring a and b to the = position.",
    at_step=True,
)
def _heads(d: RunData) -> Figure:
    a = d.ablation
    if a.heads is None:
        raise SkipFigure(a.heads_reason or "no head ablation in ablation.json")
    return head_ablation(a.heads, a.baseline.test_acc, f"Mean-ablating attention heads at step {d.step} ({d.label})")


@figure(
    "ablation_neuron_importance",
    "ablations",
    "Most important neurons",
    "The most important single neurons belong to the key-frequency clusters, and no single neuron "
    "is essential on its own.",
    at_step=True,
)
def _importance(d: RunData) -> Figure:
    top = d.ablation.neurons.top
    if not top:
        raise SkipFigure("no single-neuron ablations in ablation.json")
    return neuron_importance(top, f"Single-neuron mean ablation at step {d.step}: top {len(top)} ({d.label})")
