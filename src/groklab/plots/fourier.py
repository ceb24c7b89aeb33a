"""Fourier figures: spectra of W_E and W_L, the logits' 2-D Fourier norms, spectra over training.

Every frequency axis is in the task's own basis (Z_p for add, the discrete log on Z_(p-1) for mul,
...) and says so; a spectrum the records hold as None is skipped with the recorded reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from groklab.analysis.neurons import EMBED_FRACTION
from groklab.conventions import COLORS, phi_label, wave_argument
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, log_axis, new_figure
from groklab.records import FourierRecord, Spectra

__all__ = ["cos_coefficients_over_training", "logit_fourier_heatmap", "spectrum_bars", "spectrum_over_checkpoints"]

KEY, OTHER = COLORS["key"], COLORS["other"]


def spectrum_bars(
    norms: Sequence[float],
    keys: Sequence[int],
    title: str,
    ylabel: str,
    xlabel: str,
    threshold: float | None = None,
    null: float | None = None,
) -> Figure:
    """One bar per frequency k = 1..len(norms) (bar k-1 has height norms[k-1]); key frequencies red.
    ``xlabel`` names the frequencies' basis.

    ``threshold`` (a fraction of the largest bar) is drawn as a dotted line and ``null`` (the norm a
    frequency must exceed to stand out against a shuffled basis) as a dashed one, when given."""
    fig, axes = new_figure(title)
    ax = axes[0, 0]
    ks = np.arange(1, len(norms) + 1)
    colors = [KEY if k in set(keys) else OTHER for k in ks]
    ax.bar(ks, norms, color=colors, width=0.8)
    if threshold is not None and len(norms):
        ax.axhline(threshold * max(norms), color="k", ls=":", lw=1, label=f"{threshold:g} of the largest")
    if null is not None:
        ax.axhline(null, color=COLORS["neutral"], ls="--", lw=1, label="shuffled-basis null", gid="null")
    if threshold is not None or null is not None:
        ax.legend(fontsize=8)
    for k in keys if len(keys) <= 12 else []:  # numbers over many bars would only clutter
        if 1 <= k <= len(norms):
            ax.annotate(str(k), (k, norms[k - 1]), ha="center", va="bottom", fontsize=8, color=KEY)
    ax.set_xlabel(f"{xlabel}; key frequencies in red")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0.3, len(norms) + 0.7)
    return fig


def logit_fourier_heatmap(
    norms: np.ndarray, labels: Sequence[str], title: str, a: str = "a", b: str = "b", basis: str = "Z_p"
) -> Figure:
    """The [n, n] table of 2-D Fourier norms of the logits (rows: basis function of phi_a(a),
    columns: of phi_b(b); ``a``, ``b`` how labels write them, ``basis`` the name of Z_n)."""
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
    ax.set_xlabel(f"Fourier basis function of {b} (const, cos k, sin k) over {basis}")
    ax.set_ylabel(f"Fourier basis function of {a} (const, cos k, sin k) over {basis}")
    colorbar(fig, im, ax, "norm over answers c (logit units, log scale)")
    return fig


def spectrum_over_checkpoints(
    steps: Sequence[int], norms: np.ndarray, keys: Sequence[int], title: str, what: str, xlabel: str
) -> Figure:
    """Heatmap of a spectrum [checkpoint, frequency] (rows: checkpoints ascending); ``xlabel``
    names the frequencies' basis."""
    fig, axes = new_figure(title, size=(9, 5.5))
    ax = axes[0, 0]
    norms = np.asarray(norms, dtype=float)
    im = ax.imshow(norms, aspect="auto", interpolation="nearest", cmap="magma", origin="lower",
                   extent=(0.5, norms.shape[1] + 0.5, -0.5, norms.shape[0] - 0.5))  # fmt: skip
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 12)).round().astype(int))
    ax.set_yticks(ticks, [str(steps[i]) for i in ticks], fontsize=8)
    for k in keys:
        ax.axvline(k, color="w", lw=0.6, ls=":")
    ax.set_xlabel(f"{xlabel}; key frequencies dotted")
    ax.set_ylabel("checkpoint (training step; rows not to scale)")
    colorbar(fig, im, ax, f"{what} norm (weight units)")
    return fig


def cos_coefficients_over_training(
    steps: Sequence[int], coeffs: np.ndarray, keys: Sequence[int], title: str, basis: str = "Z_p"
) -> Figure:
    """<L, C_k> over checkpoints, one line per frequency (``coeffs [checkpoint, k-1]``) of the basis
    named ``basis``; key frequencies coloured and labelled (gid ``k=K``), the others grey."""
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
    ax.set_ylabel(f"coefficient <L, C_k> (logit units; k of {basis})")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=8, ncol=2)
    return fig


def _over(fourier: FourierRecord, spectrum: Callable[[Spectra], list[float] | None]) -> tuple[list[int], np.ndarray]:
    """(steps, spectra [checkpoint, k-1]) of the recorded checkpoints that have ``spectrum``."""
    rows = [(r.step, v) for r in fourier.over_checkpoints if (v := spectrum(r)) is not None]
    return [s for s, _ in rows], np.asarray([v for _, v in rows], dtype=float)


def _need(values: list[float] | None, fourier: FourierRecord, name: str) -> list[float]:
    """A recorded spectrum, or SkipFigure with the reason the record gives for its absence."""
    if values is None:
        raise SkipFigure(fourier.reasons.get(name) or f"fourier.json has no {name}")
    return values


# ------------------------------------------------------------------ registered figures


@figure(
    "fourier_embedding_spectrum",
    "fourier",
    "Embedding spectrum",
    "A grokked embedding is sparse in the Fourier basis: a few key frequencies carry almost all of its norm.",
    at_step=True,
)
def _embed(d: RunData) -> Figure:
    norms = _need(d.fourier.embedding_norms, d.fourier, "embedding_norms")
    return spectrum_bars(
        norms, d.keys, f"Fourier spectrum of W_E in {d.basis_name} at step {d.step} ({d.label})",
        "norm of cos k and sin k rows of F @ W_E", d.freq_label, threshold=EMBED_FRACTION,
        null=d.neurons.embedding_null,
    )  # fmt: skip


@figure(
    "fourier_unembed_spectrum",
    "fourier",
    "W_L spectrum",
    "The neurons write to the logits along the same few key frequencies as the embedding reads.",
    at_step=True,
)
def _unembed(d: RunData) -> Figure:
    norms = _need(d.fourier.unembed_norms, d.fourier, "unembed_norms")
    return spectrum_bars(
        norms, d.keys, f"Fourier spectrum of W_L = W_out W_U over answers {phi_label(d.basis_record, 'c')} "
        f"in {d.basis_name} at step {d.step} ({d.label})", "norm of cos k and sin k output coefficients", d.freq_label,
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
    title = f"2-D Fourier norms of the logits at step {d.step} ({d.label})"  # the axes name the basis
    a, b = phi_label(d.basis_record, "a"), phi_label(d.basis_record, "b")
    return logit_fourier_heatmap(np.asarray(f.logit_norms), f.basis_labels, title, a, b, d.basis_name)


@figure(
    "fourier_spectrum_over_checkpoints",
    "fourier",
    "Embedding spectrum over training",
    "The key frequencies brighten during circuit formation while all others fade in cleanup.",
)
def _embed_over(d: RunData) -> Figure:
    steps, norms = _over(d.analysis.fourier, lambda r: r.embedding_norms)
    if not steps:
        _need(None, d.analysis.fourier, "embedding_norms")
    title = f"W_E spectrum in {d.basis_name} over checkpoints ({d.label})"
    return spectrum_over_checkpoints(steps, norms, d.keys, title, "W_E", d.freq_label)


@figure(
    "fourier_unembed_over_checkpoints",
    "fourier",
    "W_L spectrum over training",
    "The output side of the circuit concentrates on the key frequencies at the same time as the embedding does.",
)
def _unembed_over(d: RunData) -> Figure:
    steps, norms = _over(d.analysis.fourier, lambda r: r.unembed_norms)
    if not steps:
        _need(None, d.analysis.fourier, "unembed_norms")
    title = f"W_L spectrum in {d.basis_name} over checkpoints ({d.label})"
    return spectrum_over_checkpoints(steps, norms, d.keys, title, "W_L", d.freq_label)


@figure(
    "fourier_cos_coefficients",
    "fourier",
    "cos(w(a+b-c)) coefficients over training",
    "The logits' coefficients on cos(w_k(a+b-c)) (in the task's basis) grow for the key frequencies only, "
    "the signature of the Fourier multiplication algorithm.",
)
def _cos(d: RunData) -> Figure:
    steps, coeffs = _over(d.analysis.fourier, lambda r: r.cos_coefficients)
    if not steps:
        raise SkipFigure(d.analysis.fourier.cos_coefficients_reason or "no cos(w(a+b-c)) coefficients in fourier.json")
    title = f"Logit coefficients on cos(w_k({wave_argument(d.basis_record)})) in {d.basis_name} ({d.label})"
    return cos_coefficients_over_training(steps, coeffs, d.keys, title, d.basis_name)
