"""The newer lenses (DESIGN section 6): LLC against test loss, softmax collapse, clock vs pizza
measures over training, sqrt(AGOP) at chosen steps. Each reads a record the analysis wrote
(``analysis/llc.json``, ``metrics.jsonl``, ``analysis/lenses.json``) and skips with the reason
when it is missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from groklab.conventions import COLORS
from groklab.plots.dynamics import Metrics, metric_series, series
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import log_axis, mark_events, new_figure
from groklab.records import GrokkingEvents, Lenses, LLCSeries

__all__ = ["agop_panels", "clock_pizza_curves", "collapse_curves", "llc_curve"]


def llc_curve(llc: LLCSeries, metrics: Metrics, events: GrokkingEvents | None, title: str) -> Figure:
    """LLC mean +- std over chains at the measured snapshots (left axis) and test loss (right, log)."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    pts = sorted(llc.points, key=lambda p: p.step)
    steps = np.array([max(p.step, 1) for p in pts], dtype=float)
    mean, std = np.array([p.mean for p in pts]), np.array([p.std for p in pts])
    ax.errorbar(steps, mean, yerr=std, color=COLORS["llc"], marker="o", lw=1.6, capsize=3, label="LLC (train)")
    ax.set_ylabel("local learning coefficient")
    s = llc.settings
    ax.set_title(
        f"eps {s['epsilon']:g}, n_beta {s['n_beta']:g}, gamma {s['gamma']:g}, "
        f"{int(s['chains'])} chains x {int(s['draws'])} draws (burn-in {int(s['burnin'])})",
        fontsize=8,
    )
    right = ax.twinx()
    right.plot(*metric_series(metrics, "test_loss", positive=True), color=COLORS["test"], lw=1.2, label="test loss")
    log_axis(right, "y")
    right.set_ylabel("test loss (nats, log scale)", color=COLORS["test"])
    right.set_xlabel("training step (log scale)")
    mark_events(ax, events)
    log_axis(ax, "x")
    ax.set_xlabel("training step (log scale)")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def collapse_curves(metrics: Metrics, events: GrokkingEvents | None, title: str) -> Figure:
    """Float32 softmax-collapse and zero-loss fractions of the training split over training."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    ax.plot(
        *metric_series(metrics, "softmax_collapse"), color=COLORS["llc"], lw=1.6, label="softmax collapse (float32)"
    )
    ax.plot(
        *metric_series(metrics, "zero_loss_frac"), color=COLORS["train"], lw=1.2, ls="--", label="zero loss (float32)"
    )
    _fraction_axes(ax, events, "fraction of training pairs", 1.02, "upper left")
    return fig


def _fraction_axes(ax: Any, events: GrokkingEvents | None, ylabel: str, top: float, legend: str) -> None:
    """Events marked, log-step x axis, a [0, top] y axis for fractions, the legend."""
    mark_events(ax, events)
    log_axis(ax, "x")
    ax.set_xlabel("training step (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, top)
    ax.legend(loc=legend, fontsize=8)


def clock_pizza_curves(lenses: Lenses, events: GrokkingEvents | None, title: str) -> Figure:
    """Gradient symmetricity and distance irrelevance at the measured steps, and the AGOP's a-a
    circulant fraction where measured (its initialisation value dotted)."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    for field, label, color in (
        ("gradient_symmetricity", "gradient symmetricity", COLORS["symmetricity"]),
        ("distance_irrelevance", "distance irrelevance", COLORS["irrelevance"]),
    ):
        ax.plot(
            *series((p.step, getattr(p, field)) for p in lenses.points), color=color, marker="o", lw=1.4, label=label
        )
    agop = series((p.step, p.agop.aa if p.agop else None) for p in lenses.points)
    ax.plot(*agop, color=COLORS["agop"], marker="s", lw=1.0, label="AGOP a-a circulant fraction")
    if lenses.agop_baseline is not None and lenses.agop_baseline.aa is not None:
        ax.axhline(lenses.agop_baseline.aa, color=COLORS["agop"], ls=":", lw=1, label="... at initialisation")
    _fraction_axes(ax, events, "value (clock: GS < 1, DI ~ 1; pizza: GS ~ 1, DI low)", 1.05, "lower left")
    return fig


def agop_panels(mats: Mapping[int, Sequence[Sequence[float]]], p_label: str, title: str) -> Figure:
    """sqrt(AGOP) [2n, 2n] in phi order at each step of ``mats`` (a, then b; the a-b block's columns
    in reversed phi order, so shift-invariant structure shows as constant diagonals)."""
    steps = sorted(mats)
    fig, axes = new_figure(title, 1, len(steps), size=(3.2 * len(steps) + 1, 3.6))
    for ax, step in zip(axes[0], steps, strict=True):
        M = np.asarray(mats[step], dtype=float)
        im = ax.imshow(M, cmap="viridis", interpolation="nearest")
        n = M.shape[0] // 2
        ax.axhline(n - 0.5, color="w", lw=0.6)
        ax.axvline(n - 0.5, color="w", lw=0.6)
        ax.set_title(f"step {step}", fontsize=9)
        ax.set_xticks([n / 2, 3 * n / 2], ["a", "b"])
        ax.set_yticks([n / 2, 3 * n / 2], ["a", "b"])
        ax.set_xlabel(f"input token ({p_label} order)", fontsize=8)
        ax.set_ylabel(f"input token ({p_label} order)", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.7, label="sqrt(AGOP)")
    return fig


# ---------------------------------------------------------------- registered adapters


def _lenses(data: RunData) -> Lenses:
    lenses = data.analysis.lenses
    if lenses is None:
        raise SkipFigure("no lenses.json (analysed before the lenses existed: run `groklab analyze` again)")
    return lenses


@figure(
    "llc_over_training",
    "lenses",
    "LLC over training",
    "LLC rises while memorizing and falls through grokking (train data only)",
)
def _llc(data: RunData) -> Figure:
    from groklab.analysis.lenses import read_lens_record

    llc = read_lens_record(data.run, "llc")
    if llc is None:
        raise SkipFigure(f"no LLC estimates (opt-in: run `groklab llc {data.run.path}`)")
    return llc_curve(llc, data.metrics, data.events, "Local learning coefficient and test loss")


@figure(
    "softmax_collapse", "lenses", "Softmax collapse", "share of training pairs whose float32 softmax is exactly one-hot"
)
def _collapse(data: RunData) -> Figure:
    if not any(r.get("softmax_collapse") is not None for r in data.metrics):
        raise SkipFigure("metrics.jsonl has no softmax_collapse (trained before it was recorded)")
    return collapse_curves(data.metrics, data.events, "Softmax collapse of the training split (float32)")


@figure("clock_pizza", "lenses", "Clock or pizza", "gradient symmetricity and distance irrelevance over training")
def _clock(data: RunData) -> Figure:
    lenses = _lenses(data)
    if all(p.gradient_symmetricity is None for p in lenses.points):
        raise SkipFigure(lenses.null_reasons.get("clock_pizza", "no measure"))
    return clock_pizza_curves(lenses, data.events, f"Clock vs pizza (attention rate {lenses.attn_rate:g})")


@figure("agop", "lenses", "sqrt(AGOP)", "average gradient outer product w.r.t. the one-hot inputs, phi order")
def _agop(data: RunData) -> Figure:
    lenses = _lenses(data)
    if not lenses.agop_sqrt:
        raise SkipFigure(lenses.null_reasons.get("agop", "no AGOP matrices recorded"))
    return agop_panels(
        lenses.agop_sqrt, lenses.basis, "sqrt(AGOP) at the initialisation, memorization, grokking and last steps"
    )
