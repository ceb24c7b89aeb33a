"""The figure registry: name -> (draw function, caption, group), shared by the CLI, report and dashboard.

Each figure module registers its figures with :func:`figure`. A registered draw function takes a
:class:`groklab.plots.source.RunData` and returns a matplotlib ``Figure`` (kind ``png``) or a
``matplotlib.animation.Animation`` (kind ``gif``), or raises :class:`SkipFigure` with the reason
when the run has no data for it (an MLP has no attention; x2+xy+y2 has no structure map). A figure
registered with ``at_step=True`` shows one checkpoint, ``RunData.step``; the others show the run
over training as recorded. Nothing here writes files.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from groklab.plots.source import RunData

__all__ = ["FIGURES", "GROUPS", "FigureSpec", "Rendered", "SkipFigure", "caption", "figure", "render_all", "specs"]

GROUPS = {
    "dynamics": "Training dynamics",
    "fourier": "Fourier",
    "embeddings": "Embeddings",
    "attention": "Attention",
    "neurons": "Neurons",
    "logits": "Logits",
    "weights": "Weights",
    "ablations": "Ablations",
    "lenses": "Newer lenses (LLC, clock vs pizza, AGOP, softmax collapse)",
    "animations": "Animations over checkpoints",
}


class SkipFigure(Exception):
    """The run has no data for this figure; the message says why (it is listed, never faked)."""


@dataclass(frozen=True)
class FigureSpec:
    name: str  # file stem: figures/<name>.<kind>
    group: str  # a key of GROUPS
    title: str
    caption: str  # one line: what to look for
    draw: Callable[[RunData], Any]
    kind: str = "png"  # "png" (a Figure) or "gif" (an Animation)
    at_step: bool = False  # shows the one checkpoint RunData.step (else: the run over training)

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.kind}"


FIGURES: dict[str, FigureSpec] = {}


def figure(
    name: str, group: str, title: str, caption: str, kind: str = "png", at_step: bool = False
) -> Callable[[Callable], Callable]:
    """Decorator registering ``draw(data: RunData)`` as figure ``name`` (``at_step``: it shows
    the checkpoint ``data.step``)."""
    if group not in GROUPS:
        raise ValueError(f"unknown figure group {group!r}")

    def wrap(fn: Callable[[RunData], Any]) -> Callable[[RunData], Any]:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} registered twice")
        FIGURES[name] = FigureSpec(name, group, title, caption, fn, kind, at_step)
        return fn

    return wrap


def specs(names: Sequence[str] | None = None) -> list[FigureSpec]:
    """Registered figures in group order (then registration order), optionally only ``names``."""
    order = list(GROUPS)
    chosen = [FIGURES[n] for n in names] if names is not None else list(FIGURES.values())
    return sorted(chosen, key=lambda s: order.index(s.group))


def caption(name: str) -> str:
    return FIGURES[name].caption


@dataclass
class Rendered:
    spec: FigureSpec
    obj: Any | None  # Figure or Animation; None when skipped or failed
    skip_reason: str | None
    seconds: float
    error: str | None = None  # an unexpected exception while drawing (a bug, not missing data)


def render_all(data: RunData, names: Sequence[str] | None = None) -> Iterator[Rendered]:
    """Draw each figure in turn (the caller saves and closes it before asking for the next).

    A figure without data is yielded with its skip reason; one whose drawing raised anything else
    is yielded with the error, so one broken figure does not stop the others."""
    for spec in specs(names):
        t0 = time.perf_counter()
        obj, reason, error = None, None, None
        try:
            obj = spec.draw(data)
        except SkipFigure as e:
            reason = str(e)
        except Exception as e:  # reported by the caller, which then fails
            error = f"{type(e).__name__}: {e}"
        yield Rendered(spec, obj, reason, time.perf_counter() - t0, error)
