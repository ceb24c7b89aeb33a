"""Figures: records and tensors in, matplotlib Figures (and GIF animations) out.

- :mod:`.registry`: ``FIGURES`` (name -> draw function, caption, group), ``caption(name)``,
  ``render_all``; the report and the dashboard read captions from here.
- :mod:`.source`: :class:`RunData`, what the registered figures draw from (a run's typed records
  and arrays computed through :mod:`groklab.analysis` on first use, at a chosen checkpoint).
- :func:`draw_figure` (what ``Run.figure`` calls) draws one registered figure of a run, and
  :func:`draw_animation` one animation.
- One module per group: dynamics, fourier, embeddings, attention, neurons, logits, weights,
  ablations, lenses, animations. Each holds pure drawing functions (records/arrays -> Figure) and the
  registered adapters that feed them from a RunData.

Figures are made with matplotlib's object-oriented API (no pyplot, no global state); saving
renders them with Agg. Nothing here writes into a run directory: :func:`save` renders one figure
to the path it is given, and the CLI (through ``Run.write_figure``) decides the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from groklab.plots import (  # register every figure
    ablations,
    animations,
    attention,
    dynamics,
    embeddings,
    fourier,
    lenses,
    logits,
    neurons,
    weights,
)
from groklab.plots.registry import FIGURES, GROUPS, FigureSpec, Rendered, SkipFigure, caption, render_all, specs
from groklab.plots.source import RunData

if TYPE_CHECKING:
    from matplotlib.animation import Animation
    from matplotlib.figure import Figure

    from groklab.runs import Run

__all__ = [
    "FIGURES",
    "GROUPS",
    "FigureSpec",
    "Rendered",
    "RunData",
    "SkipFigure",
    "caption",
    "close",
    "draw_animation",
    "draw_figure",
    "render_all",
    "save",
    "specs",
]

_MODULES = (ablations, animations, attention, dynamics, embeddings, fourier, lenses, logits, neurons, weights)
PNG_DPI = 100


def save(obj: Any, path: Path | BinaryIO, kind: str = "png") -> None:
    """Render a Figure (``png``) or an Animation (``gif``) to ``path`` (a PNG also to a binary file)."""
    if kind == "gif":
        obj.save(str(path), writer=animations.gif_writer(), dpi=animations.DPI)
    else:
        obj.savefig(path, format=kind, dpi=PNG_DPI)


def close(obj: Any) -> None:
    """Release what a rendered figure holds (the Figure of an Animation too)."""
    fig = getattr(obj, "_fig", obj)
    if hasattr(fig, "clear"):
        fig.clear()


def _spec(name: str, kind: str) -> FigureSpec:
    spec = FIGURES.get(name)
    if spec is None:
        known = ", ".join(s.name for s in specs())
        raise ValueError(f"unknown figure {name!r}; known figures: {known}")
    if spec.kind != kind:
        if kind == "png":
            raise ValueError(
                f"figure {name!r} is an animation over checkpoints, not one Figure: get the matplotlib "
                f"Animation with groklab.plots.draw_animation(run, {name!r}), or its GIF from `groklab figures`"
            )
        raise ValueError(f"figure {name!r} is not an animation: draw it with groklab.plots.draw_figure")
    return spec


def draw_figure(run: Run | Path | str, name: str, step: int | None = None, device: str = "cpu") -> Figure:
    """The registered figure ``name`` of an analysed run, as a matplotlib Figure.

    Without ``step`` it shows what the analysis recorded (the analysed checkpoint). With ``step``,
    the figures of one checkpoint (``FigureSpec.at_step``: spectra, neurons, embeddings, attention,
    logits, weights, ablations) show the weights saved at ``step`` and records recomputed there
    (see :class:`RunData`); figures over training (curves, progress measures, spectra over
    checkpoints) are drawn as recorded whatever ``step``.

    Raises ValueError for an unknown name (listing the known ones) or an animation (kind ``gif``:
    use :func:`draw_animation`); SkipFigure when the run has no data for this figure (with the
    reason); RunError when the run is not analysed or has no weights saved at ``step`` (naming the
    nearest saved steps).
    """
    spec = _spec(name, "png")
    return spec.draw(RunData(run, device=device, step=step))


def draw_animation(run: Run | Path | str, name: str, device: str = "cpu") -> Animation:
    """The registered animation ``name`` (kind ``gif``) of an analysed run, as a matplotlib
    Animation over its checkpoints (e.g. ``anim.to_jshtml()`` in a notebook, or :func:`save`)."""
    spec = _spec(name, "gif")
    return spec.draw(RunData(run, device=device))
