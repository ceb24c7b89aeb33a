"""Figures: records and tensors in, matplotlib Figures (and GIF animations) out.

- :mod:`.registry`: ``FIGURES`` (name -> draw function, caption, group), ``caption(name)``,
  ``render_all``; the report and the dashboard read captions from here.
- :mod:`.source`: :class:`RunData`, what the registered figures draw from (a run's records and
  arrays computed through :mod:`groklab.analysis` on first use).
- One module per group: dynamics, fourier, embeddings, attention, neurons, logits, weights,
  ablations, animations. Each holds pure drawing functions (records/arrays -> Figure) and the
  registered adapters that feed them from a RunData.

Figures are made with matplotlib's object-oriented API (no pyplot, no global state); saving
renders them with Agg. Nothing here writes into a run directory: :func:`save` renders one figure to the path it is given,
and the CLI (through ``Run.write_figure``) decides the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from groklab.plots import (  # register every figure
    ablations,
    animations,
    attention,
    dynamics,
    embeddings,
    fourier,
    logits,
    neurons,
    weights,
)
from groklab.plots.registry import FIGURES, GROUPS, FigureSpec, Rendered, SkipFigure, caption, render_all, specs
from groklab.plots.source import RunData

__all__ = [
    "FIGURES",
    "GROUPS",
    "FigureSpec",
    "Rendered",
    "RunData",
    "SkipFigure",
    "caption",
    "close",
    "render_all",
    "save",
    "specs",
]

_MODULES = (ablations, animations, attention, dynamics, embeddings, fourier, logits, neurons, weights)
PNG_DPI = 100


def save(obj: Any, path: Path, kind: str = "png") -> None:
    """Render a Figure (``png``) or an Animation (``gif``) to ``path``."""
    if kind == "gif":
        obj.save(str(path), writer=animations.gif_writer(), dpi=animations.DPI)
    else:
        obj.savefig(path, format=kind, dpi=PNG_DPI)


def close(obj: Any) -> None:
    """Release what a rendered figure holds (the Figure of an Animation too)."""
    fig = getattr(obj, "_fig", obj)
    if hasattr(fig, "clear"):
        fig.clear()
