"""Animations over checkpoints, saved as GIF through matplotlib's PillowWriter (by the caller).

Each function takes per-checkpoint arrays and returns a ``FuncAnimation`` whose frame i draws
checkpoint i; all data are computed before the first frame, so saving is only drawing. The
artists that change between frames are marked ``animated``: :class:`BlitPillowWriter` draws the
rest of the figure once and, per frame, only those over a copy of it (the same frames as a full
redraw, in a fraction of the time: most of a full draw is laying out tick labels that never change).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from PIL import Image

from groklab.analysis.views import frequency_plane, pick_steps
from groklab.conventions import COLORS
from groklab.plots.dynamics import metric_series
from groklab.plots.embeddings import TOKEN_CMAP, inside, need_circles, token_phi, x_label
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import log_axis, mark_events, new_figure
from groklab.records import GrokkingEvents

__all__ = ["FPS", "MAX_FRAMES", "BlitPillowWriter", "circles_animation", "gif_writer", "spectrum_curves_animation"]

MAX_FRAMES = 40  # checkpoints shown (evenly chosen): keeps GIFs small and quick to draw
FPS = 4
DPI = 72


class BlitPillowWriter(PillowWriter):
    """PillowWriter that renders the figure without its animated artists once, then each frame as
    that background plus the animated artists drawn over it (no full redraw per frame)."""

    def setup(self, fig: Figure, outfile: Any, dpi: float | None = None) -> None:
        super().setup(fig, outfile, dpi=dpi)
        self._frames: list[Image.Image] = []  # as PillowWriter.setup, typed
        fig.set_dpi(self.dpi)
        w, h = fig.bbox.size
        self._renderer = RendererAgg(int(w), int(h), fig.dpi)
        self._background: Any = None
        self._animated: list[Any] = []

    def grab_frame(self, **savefig_kwargs: Any) -> None:
        r, fig = self._renderer, self.fig
        if self._background is None:
            self._animated = [a for a in fig.findobj(lambda a: a.get_animated()) if a is not fig]
            shown = [a.get_visible() for a in self._animated]
            for a in self._animated:
                a.set_visible(False)  # (while saving, matplotlib would draw animated artists too)
            r.clear()
            fig.draw(r)  # the still part of every frame
            self._background = r.copy_from_bbox(fig.bbox)
            for a, v in zip(self._animated, shown, strict=True):
                a.set_visible(v)
        else:
            r.restore_region(self._background)
        for artist in self._animated:
            artist.draw(r)
        w, h = int(r.width), int(r.height)
        frame = Image.frombuffer("RGBA", (w, h), bytes(r.buffer_rgba()), "raw", "RGBA", 0, 1)
        self._frames.append(frame.convert("RGB"))


def gif_writer() -> PillowWriter:
    return BlitPillowWriter(fps=FPS)


def _freeze_layout(fig: Any) -> None:
    """Lay the figure out once and keep that layout for every frame."""
    fig.draw_without_rendering()
    fig.set_layout_engine(None)


def spectrum_curves_animation(
    steps: Sequence[int],
    spectra: np.ndarray,
    keys: Sequence[int],
    metrics: Sequence[Mapping[str, Any]],
    events: GrokkingEvents | None,
    title: str,
    xlabel: str = "frequency k",
) -> FuncAnimation:
    """Left: the embedding spectrum at checkpoint i (``spectra [checkpoint, k-1]``; ``xlabel`` names
    the frequencies' basis); right: train and test loss with a cursor at that checkpoint's step."""
    fig, axes = new_figure(title, 1, 2, size=(10, 4.2))
    ax_s, ax_c = axes[0, 0], axes[0, 1]
    spectra = np.asarray(spectra, dtype=float)
    ks = np.arange(1, spectra.shape[1] + 1)
    colors = [COLORS["key"] if k in set(keys) else COLORS["other"] for k in ks]
    bars = ax_s.bar(ks, spectra[0], color=colors, animated=True)
    ax_s.set_ylim(0, float(spectra.max()) * 1.05 or 1.0)
    ax_s.set_xlabel(f"{xlabel} (key in red)")
    ax_s.set_ylabel("W_E norm of cos k and sin k rows")
    label = ax_s.text(
        0.5, 1.02, "", transform=ax_s.transAxes, ha="center", va="bottom", fontsize=10, animated=True, gid="step"
    )
    for key, name in (("train_loss", "train"), ("test_loss", "test")):
        ax_c.plot(*metric_series(metrics, key, positive=True), color=COLORS[name], label=name, lw=1.4)
    mark_events(ax_c, events)
    log_axis(ax_c, "x")
    log_axis(ax_c, "y")
    ax_c.set_xlabel("training step (log scale)")
    ax_c.set_ylabel("cross-entropy loss (nats, log scale)")
    ax_c.legend(fontsize=7, loc="lower left")
    cursor = ax_c.axvline(max(steps[0], 1), color="k", lw=1, animated=True)

    def draw(i: int) -> list[Any]:
        for bar, h in zip(bars, spectra[i], strict=True):
            bar.set_height(h)
        label.set_text(f"embedding spectrum at step {steps[i]}")
        cursor.set_xdata([max(steps[i], 1)] * 2)
        return [*bars, label, cursor]

    label.set_text(f"embedding spectrum at step {steps[-1]}")
    _freeze_layout(fig)
    return FuncAnimation(fig, draw, frames=len(steps), interval=1000 // FPS, blit=False)


def circles_animation(
    steps: Sequence[int], planes: Mapping[int, np.ndarray], phi: np.ndarray, n: int, title: str
) -> FuncAnimation:
    """One panel per frequency k of Z_n: the tokens in k's plane (``planes[k] [checkpoint, p, 2]``) at
    checkpoint i, those the map places (``phi [p]`` >= 0) only, coloured by phi; axes fixed over
    frames so the circle can be seen to grow."""
    panels = len(planes)
    cols = min(panels, 4)
    rows = math.ceil(panels / cols)
    fig, axes = new_figure(title, rows, cols, size=(3.3 * cols, 3.3 * rows + 0.5))
    tokens = inside(phi)
    scatters = []
    for ax, (k, xy) in zip(axes.flat, planes.items(), strict=False):
        xy = np.asarray(xy, dtype=float)[:, tokens]
        m = float(np.abs(xy).max()) * 1.1 or 1.0
        sc = ax.scatter(xy[0, :, 0], xy[0, :, 1], c=np.asarray(phi)[tokens], cmap=TOKEN_CMAP, vmin=0, vmax=n, s=10,
                        animated=True)  # fmt: skip
        scatters.append((sc, xy))
        ax.set_xlim(-m, m)
        ax.set_ylim(-m, m)
        ax.set_aspect("equal")
        ax.set_title(f"k = {k}", fontsize=10)
        ax.set_xlabel("cos-k direction (embedding units)", fontsize=8)
        ax.set_ylabel("sin-k direction (embedding units)", fontsize=8)
    for ax in list(axes.flat)[panels:]:
        ax.set_axis_off()
    label = fig.text(0.01, 0.01, "", fontsize=9, animated=True, gid="step")

    def draw(i: int) -> list[Any]:
        for sc, xy in scatters:
            sc.set_offsets(xy[i])
        label.set_text(f"step {steps[i]}")
        return [sc for sc, _ in scatters] + [label]

    _freeze_layout(fig)
    return FuncAnimation(fig, draw, frames=len(steps), interval=1000 // FPS, blit=False)


def _frames(steps: Sequence[int], d: RunData) -> list[int]:
    ev = d.events
    return pick_steps(steps, MAX_FRAMES, [ev.memorization_step, ev.grokking_step])


# ------------------------------------------------------------------ registered figures


@figure(
    "anim_spectrum_curves",
    "animations",
    "Spectrum and loss over training (animation)",
    "Watch the embedding spectrum go sparse on the key frequencies as the cursor passes the drop in test loss.",
    kind="gif",
)
def _spectrum(d: RunData) -> FuncAnimation:
    fourier = d.analysis.fourier
    rows = [r for r in fourier.over_checkpoints if r.embedding_norms is not None]
    if not rows and fourier.embedding_norms is None:
        raise SkipFigure(fourier.reasons.get("embedding_norms") or "fourier.json has no embedding spectra")
    if len(rows) < 2:
        raise SkipFigure("fewer than two checkpoints have spectra in fourier.json")
    keep = set(_frames([r.step for r in rows], d))
    rows = [r for r in rows if r.step in keep]
    return spectrum_curves_animation(
        [r.step for r in rows], np.asarray([r.embedding_norms for r in rows]), d.keys, d.metrics, d.events,
        f"Embedding spectrum in {d.basis_name} and loss over training ({d.label})", d.freq_label,
    )  # fmt: skip


@figure(
    "anim_embedding_circles",
    "animations",
    "Key-frequency circles forming (animation)",
    "The tokens start as a cloud in each key frequency's plane and settle onto a circle as the model groks.",
    kind="gif",
)
def _circles(d: RunData) -> FuncAnimation:
    ks = need_circles(d, 4)
    if len(d.states) < 2:
        raise SkipFigure("fewer than two checkpoints")
    keep = set(_frames([s for s, _ in d.states], d))
    chosen = [(s, st) for s, st in d.states if s in keep]
    Ws = [d.model_with(st).W_E_tokens.detach() for _, st in chosen]
    planes = {k: np.stack([frequency_plane(W, k, d.basis).numpy() for W in Ws]) for k in ks}
    which = "key" if len(ks) == len(d.keys) else f"the first {len(ks)} of {len(d.keys)} key"
    title = f"Token embeddings in {which} frequency planes of {d.basis_name}, coloured by {x_label(d)} ({d.label})"
    return circles_animation([s for s, _ in chosen], planes, token_phi(d), d.basis.n, title)
