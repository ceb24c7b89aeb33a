"""Training dynamics: accuracy and loss curves, the progress measures, per-sample test loss."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from groklab.analysis.views import first_stable_index
from groklab.conventions import COLORS
from groklab.plots.registry import figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, log_axis, mark_events, new_figure, note, shade_phases
from groklab.records import GrokkingEvents, Phases, Progress

__all__ = [
    "accuracy_curves",
    "loss_curves",
    "measure_series",
    "metric_series",
    "per_sample_loss_heatmap",
    "progress_panel",
    "series",
]

STEP_LABEL = "training step (log scale)"
Metrics = Sequence[Mapping[str, Any]]  # evaluation records of metrics.jsonl


def series(points: Iterable[tuple[Any, Any]], positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the (step, value) points with step > 0 (a log axis has no 0) and a
    number for value (and > 0 when ``positive``, for a log y axis), ascending in step."""
    pts = [
        (s, v)
        for s, v in points
        if s and isinstance(v, int | float) and not isinstance(v, bool) and (not positive or v > 0)
    ]
    if not pts:
        return np.zeros(0), np.zeros(0)
    s, v = zip(*sorted(pts), strict=True)
    return np.asarray(s, dtype=float), np.asarray(v, dtype=float)


def metric_series(metrics: Metrics, key: str, positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one column of metrics.jsonl (see :func:`series`)."""
    return series(((r.get("step"), r.get(key)) for r in metrics), positive)


def measure_series(progress: Sequence[Progress], field: str, positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the progress measure ``field`` (a field of :class:`Progress`)."""
    return series(((r.step, getattr(r, field)) for r in progress), positive)


def _decorate(ax: Axes, events: GrokkingEvents | None, phases: Phases | None) -> None:
    shade_phases(ax, phases)
    mark_events(ax, events)
    log_axis(ax, "x")
    ax.set_xlabel(STEP_LABEL)


def accuracy_curves(metrics: Metrics, events: GrokkingEvents | None, phases: Phases | None, title: str) -> Figure:
    """Train and test accuracy over training (lines 0 and 1: train, test)."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    for key, name in (("train_acc", "train"), ("test_acc", "test")):
        ax.plot(*metric_series(metrics, key), color=COLORS[name], label=name, lw=1.6)
    _decorate(ax, events, phases)
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="center left", fontsize=8)
    return fig


def loss_curves(metrics: Metrics, events: GrokkingEvents | None, phases: Phases | None, title: str) -> Figure:
    """Train and test cross-entropy over training, log-log (lines 0 and 1: train, test)."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    for key, name in (("train_loss", "train"), ("test_loss", "test")):
        ax.plot(*metric_series(metrics, key, positive=True), color=COLORS[name], label=name, lw=1.6)
    _decorate(ax, events, phases)
    log_axis(ax, "y")
    ax.set_ylabel("cross-entropy loss (nats, log scale)")
    ax.legend(loc="lower left", fontsize=8)
    return fig


# (panel title, y label, log y, [(Progress field, line label)])
PANELS: list[tuple[str, str, bool, list[tuple[str, str]]]] = [
    (
        "losses",
        "cross-entropy (nats, log scale)",
        True,
        [
            ("train_loss", "train"),
            ("test_loss", "test"),
            ("restricted_loss", "restricted (all pairs)"),
            ("excluded_loss", "excluded (train)"),
        ],
    ),
    (
        "Gini of spectra",
        "Gini coefficient (0 = even, 1 = one frequency)",
        False,
        [("gini_embed", "W_E"), ("gini_unembed", "W_L")],
    ),
    ("weight norm", "L2 norm of all parameters", False, [("weight_norm", "||theta||")]),
    (
        "trig FVE",
        "fraction of variance in key sum directions",
        False,
        [
            ("trig_fve_pre", "MLP pre-act"),
            ("trig_fve_post", "MLP post-act"),
            ("trig_fve_logits", "logits"),
            ("cos_fraction", "cos(w(a+b-c)) of logits"),
        ],
    ),
]


def progress_panel(
    progress: Sequence[Progress], events: GrokkingEvents | None, phases: Phases | None, title: str
) -> Figure:
    """Four panels of the progress measures over checkpoints; each line's label names its field.

    A measure that is null for the run is not drawn; the panel lists it with the reason."""
    fig, axes = new_figure(title, 2, 2, size=(11, 7.5))
    reasons: dict[str, str] = {}
    for r in progress:
        reasons.update(r.null_reasons)
    for ax, (name, ylabel, logy, fields) in zip(axes.flat, PANELS, strict=True):
        missing = []
        for key, label in fields:
            s, v = measure_series(progress, key, positive=logy)
            if len(s):
                ax.plot(s, v, marker=".", ms=3, lw=1.3, label=label, gid=key)
            else:
                missing.append(f"{label}: {reasons.get(key, 'no value')}")
        _decorate(ax, events, phases)
        ax.set_title(name)
        ax.set_ylabel(ylabel)
        if logy:
            log_axis(ax, "y")
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
        if missing:
            note(ax, "not defined for this run:\n" + "\n".join(missing))
    return fig


def per_sample_loss_heatmap(steps: Sequence[int], losses: np.ndarray, title: str, floor: float = 1e-8) -> Figure:
    """Heatmap of per-sample test loss [checkpoint, sample]: samples (rows) sorted by the checkpoint
    from which their loss stays below ln 2 (then by final loss); colour on a log scale."""
    fig, axes = new_figure(title, size=(9, 5))
    ax = axes[0, 0]
    order = np.lexsort((losses[-1], first_stable_index(losses, float(np.log(2)))))
    shown = np.clip(losses[:, order].T, floor, None)
    im = ax.imshow(shown, aspect="auto", interpolation="nearest", norm=LogNorm(vmin=floor, vmax=max(shown.max(), 1.0)))
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 10)).round().astype(int))
    ax.set_xticks(ticks, [str(steps[i]) for i in ticks], rotation=45, fontsize=8)
    ax.set_xlabel("checkpoint (training step; columns are checkpoints, not to scale)")
    ax.set_ylabel(f"test sample (sorted by when it is learned; {losses.shape[1]} samples)")
    colorbar(fig, im, ax, "cross-entropy (nats, log scale)")
    return fig


# ------------------------------------------------------------------ registered figures


@figure(
    "dynamics_accuracy",
    "dynamics",
    "Accuracy over training",
    "Train accuracy reaches 1 early (memorization) while test accuracy stays low, then test accuracy "
    "jumps at the grokking step.",
)
def _accuracy(d: RunData) -> Figure:
    return accuracy_curves(d.metrics, d.events, d.phases, f"Train and test accuracy ({d.label})")


@figure(
    "dynamics_loss",
    "dynamics",
    "Loss over training",
    "Test loss rises or stalls while train loss falls (memorization), then collapses during "
    "circuit formation and cleanup.",
)
def _loss(d: RunData) -> Figure:
    return loss_curves(d.metrics, d.events, d.phases, f"Train and test loss ({d.label})")


@figure(
    "dynamics_progress",
    "dynamics",
    "Progress measures",
    "Restricted loss falls before test loss, excluded loss rises while train loss stays low, and "
    "Gini and trig FVE climb as the Fourier circuit forms; weight norm falls in cleanup.",
)
def _progress(d: RunData) -> Figure:
    return progress_panel(d.progress, d.events, d.phases, f"Progress measures over checkpoints ({d.label})")


@figure(
    "dynamics_sample_loss",
    "dynamics",
    "Per-sample test loss",
    "Each row is one test pair: look for a sharp vertical edge where most pairs are learned "
    "together at grokking, rather than one by one.",
)
def _sample_loss(d: RunData) -> Figure:
    steps, losses = d.test_losses
    return per_sample_loss_heatmap(steps, losses, f"Per-sample test loss over checkpoints ({d.label})")
