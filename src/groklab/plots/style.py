"""Shared drawing helpers: figures without pyplot's global state, phase shading, event markers.

Figures are ``matplotlib.figure.Figure`` objects made directly (no pyplot), so nothing is kept
alive between calls and any backend (Agg when saved) can render them. Colours, phase names and
event thresholds come from :mod:`groklab.conventions` (the same in the dashboard).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from groklab.conventions import COLORS, PHASE_COLORS, PHASE_LABELS
from groklab.records import GrokkingEvents, Phases

__all__ = [
    "colorbar",
    "klist",
    "log_axis",
    "mark_events",
    "new_figure",
    "note",
    "shade_phases",
    "symmetric_limits",
]


def new_figure(title: str, nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (8.0, 4.5), **kw: Any):
    """(figure, axes array [nrows, ncols]) with a suptitle and a constrained layout."""
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    fig.suptitle(title)
    return fig, axes


def shade_phases(ax: Axes, phases: Phases | None, label: bool = True) -> None:
    """Shade the phase spans (``Phases.spans()``) behind the data already plotted. For a log step
    axis, a span that starts at step 0 starts at the smallest positive step plotted instead (call
    after plotting)."""
    if phases is None:
        return
    lo = ax.dataLim.x0 if ax.has_data() and math.isfinite(ax.dataLim.x0) and ax.dataLim.x0 > 0 else 1.0
    for name, start, end in phases.spans():
        a = max(float(start), lo)
        if end <= a:
            continue
        text = PHASE_LABELS[name] if label else None
        ax.axvspan(a, end, color=PHASE_COLORS[name], alpha=0.8, zorder=0, lw=0, label=text, gid=f"phase {name}")


def mark_events(ax: Axes, events: GrokkingEvents | None, label: bool = True) -> None:
    """Dashed vertical lines at the memorization and grokking steps (when they exist)."""
    if events is None:
        return
    marks = (
        (events.memorization_step, "memorization", COLORS["train"]),
        (events.grokking_step, "grokking", COLORS["test"]),
    )
    for step, text, color in marks:
        if step is not None and step > 0:
            ax.axvline(step, color=color, ls="--", lw=1.2, zorder=3, label=f"{text} (step {step})" if label else None)


def klist(ks: Sequence[int], n: int = 6) -> str:
    """A list of frequencies for a label: all of them, or the first ``n`` and how many in all."""
    ks = list(ks)
    return str(ks) if len(ks) <= n else f"[{', '.join(map(str, ks[:n]))}, ...] ({len(ks)})"


def note(ax: Axes, text: str) -> None:
    """Write a message in the middle of an axes (e.g. why a panel has no data)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", wrap=True, fontsize=9, color="#555")


def colorbar(fig: Figure, mappable: ScalarMappable, ax: Axes | Sequence[Axes], label: str) -> None:
    cb = fig.colorbar(mappable, ax=ax, shrink=0.9)
    cb.set_label(label)


def symmetric_limits(*arrays: np.ndarray) -> tuple[float, float]:
    """(-m, m) with m the largest absolute finite value (1 if there is none)."""
    m = max((float(np.nanmax(np.abs(a))) for a in arrays if np.size(a)), default=0.0)
    m = m if math.isfinite(m) and m > 0 else 1.0
    return -m, m


def _compact(x: float, _pos: Any = None) -> str:
    """Plain-text tick label: 3, 300, 20k, 1.5M, 1e-05 (no mathtext, which is slow to lay out)."""
    if x == 0:
        return "0"
    a = abs(x)
    if 1 <= a < 1e3:
        return f"{x:g}"
    if 1e3 <= a < 1e6:
        return f"{x / 1e3:g}k"
    if 1e6 <= a < 1e9:
        return f"{x / 1e6:g}M"
    return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")


def log_axis(ax: Axes, which: str = "x", symlog: bool = False) -> None:
    """Log scale on ``which`` ("x" or "y") with plain-text labels at powers of ten only; with
    ``symlog``, linear between 0 and 1 so that 0 is shown."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    setter = ax.set_xscale if which == "x" else ax.set_yscale
    if symlog:
        setter("symlog", linthresh=1, linscale=0.5)
    else:
        setter("log")
        axis.set_major_locator(LogLocator(base=10, numticks=12))
    axis.set_major_formatter(FuncFormatter(_compact))
    axis.set_minor_formatter(NullFormatter())
