"""Attention figures: each head's mean pattern, and the `=` query's pattern as a function of (a, b)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, new_figure

__all__ = ["eq_attention_grids", "mean_patterns"]

POSITIONS = ["a", "b", "="]


def mean_patterns(mean: np.ndarray, title: str) -> Figure:
    """``mean [n_layers, n_heads, query, key]``: one 3 x 3 panel per head (images in head order)."""
    mean = np.asarray(mean, dtype=float)
    n_layers, n_heads = mean.shape[:2]
    fig, axes = new_figure(title, n_layers, n_heads, size=(2.7 * n_heads + 1.2, 2.9 * n_layers + 0.6))
    im = None
    for layer in range(n_layers):
        for h in range(n_heads):
            ax = axes[layer, h]
            im = ax.imshow(mean[layer, h], cmap="Blues", vmin=0, vmax=1)
            for (q, k), v in np.ndenumerate(mean[layer, h]):
                if k <= q:
                    ax.text(k, q, f"{v:.2f}", ha="center", va="center", fontsize=8, color="w" if v > 0.6 else "k")
            ax.set_xticks(range(3), POSITIONS)
            ax.set_yticks(range(3), POSITIONS)
            ax.set_title(f"layer {layer}, head {h}" if n_layers > 1 else f"head {h}", fontsize=10)
            ax.set_xlabel("key position (token)")
            ax.set_ylabel("query position (token)")
    if im is not None:
        colorbar(fig, im, axes, "mean attention weight (fraction)")
    return fig


def eq_attention_grids(weight_on_a: np.ndarray, p: int, title: str) -> Figure:
    """``weight_on_a [n_layers, n_heads, p*p]`` (a-major): each head's attention from `=` to token a
    as a p x p image over (a, b); the rest goes to b and `=`."""
    w = np.asarray(weight_on_a, dtype=float)
    n_layers, n_heads = w.shape[:2]
    panels = [(layer, h) for layer in range(n_layers) for h in range(n_heads)]
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    fig, axes = new_figure(title, rows, cols, size=(3.3 * cols + 1.2, 3.3 * rows + 0.6))
    im = None
    for ax, (layer, h) in zip(axes.flat, panels, strict=False):
        im = ax.imshow(w[layer, h].reshape(p, p), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"layer {layer}, head {h}" if n_layers > 1 else f"head {h}", fontsize=10)
        ax.set_xlabel("b (token)")
        ax.set_ylabel("a (token)")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    if im is not None:
        colorbar(fig, im, axes, "attention weight from = to a (fraction)")
    return fig


# ------------------------------------------------------------------ registered figures


@figure(
    "attention_mean_pattern",
    "attention",
    "Mean attention pattern per head",
    "The = query (bottom row) splits its attention between a and b; heads differ in the split.",
    at_step=True,
)
def _mean(d: RunData) -> Figure:
    pat = d.attention  # [layers, n, heads, q, k]; SkipFigure for a model without attention
    return mean_patterns(pat.mean(1).numpy(), f"Mean attention pattern over all inputs at step {d.step} ({d.label})")


@figure(
    "attention_eq_pattern",
    "attention",
    "Attention of = as a function of (a, b)",
    "Look for periodic stripes along a and b: how much = attends to a is itself a wave of a key "
    "frequency of the two tokens.",
    at_step=True,
)
def _eq(d: RunData) -> Figure:
    pat = d.attention
    if not d.full_table:
        raise SkipFigure(f"operation {d.cfg.task.op!r} leaves pairs undefined, so there is no full (a, b) grid")
    return eq_attention_grids(
        pat[:, :, :, 2, 0].permute(0, 2, 1).numpy(),
        d.p,
        f"Attention from = to a over all inputs at step {d.step} ({d.label})",
    )
