"""Logit figures: the full table against its restriction to the key frequencies (in the task's
basis: inputs and answers ordered by phi), and the correct-class logit over (a, b)."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from groklab.analysis.fourier import excluded_logits, restricted_logits
from groklab.analysis.progress import fourier_null_reason
from groklab.conventions import phi_label
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import colorbar, klist, new_figure, symmetric_limits

__all__ = ["correct_logit_surface", "logit_table_rows", "logit_tables"]


def logit_tables(
    tables: dict[str, np.ndarray], a: int, title: str, b_axis: str = "b (token)", c_axis: str = "answer c (token)"
) -> Figure:
    """Side by side, with one colour scale: logit tables [b, c] for the fixed input a (e.g. full,
    restricted, excluded); ``b_axis`` and ``c_axis`` say how rows and columns are ordered. Each is
    centred per input (over c) so the scales compare."""
    fig, axes = new_figure(title, 1, len(tables), size=(4.4 * len(tables) + 1, 4.8))
    centred = {k: v - v.mean(1, keepdims=True) for k, v in tables.items()}
    lo, hi = symmetric_limits(*centred.values())
    im = None
    for ax, (name, T) in zip(axes.flat, centred.items(), strict=True):
        im = ax.imshow(T, cmap="RdBu_r", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(c_axis)
        ax.set_ylabel(f"{b_axis}, with a = {a}")
    if im is not None:
        colorbar(fig, im, axes, "logit minus its mean over c (nats)")
    return fig


def correct_logit_surface(correct: np.ndarray, margin: np.ndarray, title: str) -> Figure:
    """Two [p, p] images over (a, b): the correct answer's logit, and its margin over the best
    wrong answer (positive = classified right). NaN cells (undefined pairs) are blank."""
    fig, axes = new_figure(title, 1, 2, size=(11, 4.8))
    ax = axes[0, 0]
    im = ax.imshow(correct, cmap="viridis", interpolation="nearest")
    ax.set_title("logit of the correct answer", fontsize=10)
    colorbar(fig, im, ax, "logit (nats)")
    ax = axes[0, 1]
    lo, hi = symmetric_limits(margin)
    im = ax.imshow(margin, cmap="RdBu", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_title("margin: correct logit minus best wrong logit", fontsize=10)
    colorbar(fig, im, ax, "logit margin (nats)")
    for ax in axes.flat:
        ax.set_xlabel("b (token)")
        ax.set_ylabel("a (token)")
    return fig


# ------------------------------------------------------------------ registered figures


@figure(
    "logits_full_vs_restricted",
    "logits",
    "Full vs. restricted logits",
    "The restricted table (key frequencies only) already has the diagonal bands of the full one, "
    "and the excluded remainder is small: the key frequencies carry the answer.",
    at_step=True,
)
def _tables(d: RunData) -> Figure:
    basis = d.basis
    why = fourier_null_reason(basis, d.keys)
    if why is not None:
        raise SkipFigure(why)
    logits = d.activations[2][basis.rows]  # [N, p] over the analysed pairs
    pairs, classes = logit_table_rows(d), basis.class_order
    a = int(d.dataset.tokens[basis.rows[pairs[0]], 0])
    full = {
        "full logits": logits.double(),
        f"restricted to k in {klist(d.keys)}": restricted_logits(logits, basis, d.keys),
        "excluded (full minus P_K L)": excluded_logits(logits, basis, d.keys),
    }
    tables = {name: T[pairs][:, classes].numpy() for name, T in full.items()}
    rec = d.basis_record
    b_axis = f"b, ordered by {phi_label(rec, 'b')} in {d.basis_name}"
    c_axis = f"answer c, ordered by {phi_label(rec, 'c')}"
    return logit_tables(tables, a, f"Logit tables for a = {a} at step {d.step} ({d.label})", b_axis, c_axis)


def logit_table_rows(d: RunData) -> torch.Tensor:
    """Indices into the analysed pairs (``d.basis.rows``) of the table drawn for one input a: the
    pairs whose a is the first token with phi_a(a) = 0 (0 for add, 1 under a discrete log),
    ordered by phi_b(b) (then by b)."""
    basis = d.basis
    a_tok = d.dataset.tokens[basis.rows, 0]
    a0 = int(a_tok[basis.ia == 0].min())
    sel = torch.nonzero(a_tok == a0).flatten()
    b_tok = d.dataset.tokens[basis.rows[sel], 1]
    return sel[torch.as_tensor(np.lexsort((b_tok.numpy(), basis.ib[sel].numpy())))]


@figure(
    "logits_correct_class",
    "logits",
    "Correct-class logit surface",
    "A grokked model gives the right answer a large, nearly constant logit and a positive margin "
    "on every pair, train and test alike.",
    at_step=True,
)
def _correct(d: RunData) -> Figure:
    logits = d.activations[2].double()
    labels = d.dataset.labels
    correct = logits.gather(1, labels[:, None]).squeeze(1)
    wrong = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    grid_c = torch.full((d.p * d.p,), float("nan"), dtype=torch.float64)
    grid_m = grid_c.clone()
    grid_c[d.dataset.pairs] = correct
    grid_m[d.dataset.pairs] = correct - wrong
    return correct_logit_surface(
        grid_c.reshape(d.p, d.p).numpy(),
        grid_m.reshape(d.p, d.p).numpy(),
        f"Correct-class logit over all inputs at step {d.step} ({d.label})",
    )
