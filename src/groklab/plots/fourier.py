"""Fourier figures: spectra of W_E and W_L, the logits' 2-D Fourier norms, spectra over training."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from groklab.analysis.neurons import EMBED_FRACTION
from groklab.conventions import COLORS
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, log_axis, new_figure
from groklab.records import FourierRecord, Spectra

__all__ = ["cos_coefficients_over_training", "logit_fourier_heatmap", "spectrum_bars", "spectrum_over_checkpoints"]

FREQ_LABEL = "frequency k (w_k = 2 pi k / p)"
KEY, OTHER = COLORS["key"], COLORS["other"]


def spectrum_bars(
    norms: Sequence[float], keys: Sequence[int], title: str, ylabel: str, threshold: float | None = None
) -> Figure:
    """One bar per frequency k = 1..len(norms) (bar k-1 has height norms[k-1]); key frequencies red.

    ``threshold`` (a fraction of the largest bar) is drawn as a dashed line when given."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    ks = np.arange(1, len(norms) + 1)
    colors = [KEY if k in set(keys) else OTHER for k in ks]
    ax.bar(ks, norms, color=colors, width=0.8)
    if threshold is not None and len(norms):
        ax.axhline(threshold * max(norms), color="k", ls=":", lw=1, label=f"{threshold:g} of the largest")
        ax.legend(fontsize=8)
    for k in keys if len(keys) <= 12 else []:  # numbers over many bars would only clutter
        if 1 <= k <= len(norms):
            ax.annotate(str(k), (k, norms[k - 1]), ha="center", va="bottom", fontsize=8, color=KEY)
    ax.set_xlabel(FREQ_LABEL + "; key frequencies in red")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0.3, len(norms) + 0.7)
    return fig


def logit_fourier_heatmap(norms: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """The [p, p] table of 2-D Fourier norms of the logits (rows: basis function of a, columns: of b)."""
    fig, axes = new_figure(title, size=(8, 7))
    ax = axes[0, 0]
    norms = np.asarray(norms, dtype=float)
    pos = norms[norms > 0]
    vmin = max(float(pos.min()), float(pos.max()) * 1e-6) if pos.size else 1e-12
    im = ax.imshow(
        np.clip(norms, vmin, None), norm=LogNorm(vmin=vmin, vmax=max(vmin * 10, norms.max())), cmap="viridis"
    )
    step = max(1, len(labels) // 16)
    ticks = list(range(0, len(labels), step))
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=7)
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=7)
    ax.set_xlabel("Fourier basis function of b (const, cos k, sin k)")
    ax.set_ylabel("Fourier basis function of a (const, cos k, sin k)")
    colorbar(fig, im, ax, "norm over answers c (logit units, log scale)")
    return fig


def spectrum_over_checkpoints(
    steps: Sequence[int], norms: np.ndarray, keys: Sequence[int], title: str, what: str
) -> Figure:
    """Heatmap of a spectrum [checkpoint, frequency] (rows: checkpoints ascending)."""
    fig, axes = new_figure(title, size=(9, 5.5))
    ax = axes[0, 0]
    norms = np.asarray(norms, dtype=float)
    im = ax.imshow(norms, aspect="auto", interpolation="nearest", cmap="magma", origin="lower",
                   extent=(0.5, norms.shape[1] + 0.5, -0.5, norms.shape[0] - 0.5))  # fmt: skip
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 12)).round().astype(int))
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks], fontsize=8)
    for k in keys:
        ax.axvline(k, color="w", lw=0.6, ls=":")
    ax.set_xlabel(FREQ_LABEL + "; key frequencies dotted")
    ax.set_ylabel("checkpoint (training step; rows not to scale)")
    colorbar(fig, im, ax, f"{what} norm (weight units)")
    return fig


def cos_coefficients_over_training(steps: Sequence[int], coeffs: np.ndarray, keys: Sequence[int], title: str) -> Figure:
    """<L, C_k> over checkpoints, one line per frequency (``coeffs [checkpoint, k-1]``); key
    frequencies coloured and labelled (gid ``k=K``), the others grey."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    coeffs = np.asarray(coeffs, dtype=float)
    x = np.asarray(steps, dtype=float)
    keep = x > 0
    named = set(sorted(keys, key=lambda k: -abs(coeffs[-1, k - 1]))[:8])  # the legend names at most 8
    for j in range(coeffs.shape[1]):
        k = j + 1
        if k in set(keys):
            label = f"k = {k}" if k in named else None
            ax.plot(x[keep], coeffs[keep, j], lw=1.8, label=label, gid=f"k={k}", zorder=3)
        else:
            ax.plot(x[keep], coeffs[keep, j], lw=0.7, color=OTHER, alpha=0.6, gid=f"k={k}")
    ax.plot([], [], color=OTHER, lw=0.7, label="other k")
    log_axis(ax, "x")
    ax.set_xlabel("training step (log scale)")
    ax.set_ylabel("coefficient <L, C_k> (logit units)")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8, ncol=2)
    return fig


def _over(fourier: FourierRecord, spectrum: Callable[[Spectra], list[float] | None]) -> tuple[list[int], np.ndarray]:
    """(steps, spectra [checkpoint, k-1]) of the recorded checkpoints that have ``spectrum``."""
    rows = [(r.step, v) for r in fourier.over_checkpoints if (v := spectrum(r)) is not None]
    return [s for s, _ in rows], np.asarray([v for _, v in rows], dtype=float)


# ------------------------------------------------------------------ registered figures


@figure(
    "fourier_embedding_spectrum",
    "fourier",
    "Embedding spectrum",
    "A grokked embedding is sparse in the Fourier basis: a few key frequencies carry almost all of its norm.",
    at_step=True,
)
def _embed(d: RunData) -> Figure:
    return spectrum_bars(
        d.fourier.embedding_norms, d.keys, f"Fourier spectrum of W_E at step {d.step} ({d.label})",
        "norm of cos k and sin k rows of F @ W_E", threshold=EMBED_FRACTION,
    )  # fmt: skip


@figure(
    "fourier_unembed_spectrum",
    "fourier",
    "W_L spectrum",
    "The neurons write to the logits along the same few key frequencies as the embedding reads.",
    at_step=True,
)
def _unembed(d: RunData) -> Figure:
    return spectrum_bars(
        d.fourier.unembed_norms, d.keys, f"Fourier spectrum of W_L = W_out W_U over answers at step {d.step} "
        f"({d.label})", "norm of cos k and sin k output coefficients",
    )  # fmt: skip


@figure(
    "fourier_logit_norms",
    "fourier",
    "Logits in the 2-D Fourier basis",
    "Bright cells form the 2 x 2 blocks of the key frequencies on the diagonal: the logits are "
    "built from products of waves in a and b at those frequencies.",
    at_step=True,
)
def _logit_norms(d: RunData) -> Figure:
    f = d.fourier
    if f.logit_norms is None:
        raise SkipFigure(f.logit_norms_reason or "no logit Fourier norms in fourier.json")
    title = f"2-D Fourier norms of the logits at step {d.step} ({d.label})"
    return logit_fourier_heatmap(np.asarray(f.logit_norms), f.basis_labels, title)


@figure(
    "fourier_spectrum_over_checkpoints",
    "fourier",
    "Embedding spectrum over training",
    "The key frequencies brighten during circuit formation while all others fade in cleanup.",
)
def _embed_over(d: RunData) -> Figure:
    steps, norms = _over(d.analysis.fourier, lambda r: r.embedding_norms)
    if not steps:
        raise SkipFigure("fourier.json has no spectra over checkpoints")
    return spectrum_over_checkpoints(steps, norms, d.keys, f"W_E spectrum over checkpoints ({d.label})", "W_E")


@figure(
    "fourier_unembed_over_checkpoints",
    "fourier",
    "W_L spectrum over training",
    "The output side of the circuit concentrates on the key frequencies at the same time as the embedding does.",
)
def _unembed_over(d: RunData) -> Figure:
    steps, norms = _over(d.analysis.fourier, lambda r: r.unembed_norms)
    if not steps:
        raise SkipFigure("fourier.json has no spectra over checkpoints")
    return spectrum_over_checkpoints(steps, norms, d.keys, f"W_L spectrum over checkpoints ({d.label})", "W_L")


@figure(
    "fourier_cos_coefficients",
    "fourier",
    "cos(w(a+b-c)) coefficients over training",
    "The logits' coefficients on cos(w_k(a+b-c)) grow for the key frequencies only, the signature "
    "of the Fourier multiplication algorithm.",
)
def _cos(d: RunData) -> Figure:
    steps, coeffs = _over(d.analysis.fourier, lambda r: r.cos_coefficients)
    if not steps:
        raise SkipFigure(d.analysis.fourier.cos_coefficients_reason or "no cos(w(a+b-c)) coefficients in fourier.json")
    s = "a+b" if d.additive != "a-b" else "a-b"
    return cos_coefficients_over_training(steps, coeffs, d.keys, f"Logit coefficients on cos(w_k({s}-c)) ({d.label})")
