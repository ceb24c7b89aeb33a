"""Weight figures: heatmaps of the main matrices, and each parameter's norm over training."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from groklab.analysis.views import main_matrices, parameter_norms
from groklab.plots.registry import SkipFigure, figure
from groklab.plots.source import RunData
from groklab.plots.style import log_axis, mark_events, new_figure, shade_phases, symmetric_limits
from groklab.records import GrokkingEvents, Phases

__all__ = ["AXES", "matrix_heatmaps", "norms_over_training"]

# (row axis, column axis) of each matrix as main_matrices lays it out, by the name's last part
AXES = {
    "W_E": ("input token", "d_model"),
    "W_pos": ("position (a, b, =)", "d_model"),
    "W_Q": ("d_model", "head x d_head"),
    "W_K": ("d_model", "head x d_head"),
    "W_V": ("d_model", "head x d_head"),
    "W_O": ("head x d_head", "d_model"),
    "W_in": ("input dimension", "neuron"),
    "W_out": ("neuron", "d_model"),
    "W_U": ("residual dimension", "answer c"),
}


def matrix_heatmaps(matrices: Mapping[str, np.ndarray], title: str) -> Figure:
    """One panel per matrix (images in the given order), each on its own symmetric colour scale."""
    n = len(matrices)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = new_figure(title, rows, cols, size=(4.6 * cols, 3.8 * rows + 0.6))
    for ax, (name, M) in zip(axes.flat, matrices.items(), strict=False):
        M = np.asarray(M, dtype=float)
        lo, hi = symmetric_limits(M)
        im = ax.imshow(M, cmap="RdBu_r", vmin=lo, vmax=hi, aspect="auto", interpolation="nearest")
        r, c = AXES.get(name.rsplit(".", 1)[-1], ("row", "column"))
        ax.set_title(f"{name} {list(M.shape)}", fontsize=10)
        ax.set_xlabel(c)
        ax.set_ylabel(r)
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label("weight (parameter units)", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    return fig


def norms_over_training(
    steps: Sequence[int], norms: Mapping[str, Sequence[float]], events: GrokkingEvents | None, phases: Phases | None,
    title: str,
) -> Figure:  # fmt: skip
    """Each parameter's L2 norm over checkpoints (one line per parameter, gid = its name), log-log."""
    fig, axes = new_figure(title, size=(10, 5.5))
    ax = axes[0, 0]
    x = np.asarray(steps, dtype=float)
    keep = x > 0
    for name, values in norms.items():
        ax.plot(x[keep], np.asarray(values, dtype=float)[keep], lw=1.3, label=name, gid=name)
    shade_phases(ax, phases, label=False)
    mark_events(ax, events)
    log_axis(ax, "x")
    log_axis(ax, "y")
    ax.set_xlabel("training step (log scale)")
    ax.set_ylabel("L2 (Frobenius) norm (parameter units, log scale)")
    ax.legend(fontsize=7, ncol=2, loc="best")
    return fig


def _pick(d: RunData, names: Sequence[str]) -> dict[str, np.ndarray]:
    mats = main_matrices(d.checkpoint_model)
    return {k: v.double().numpy() for k, v in mats.items() if k.rsplit(".", 1)[-1] in names}


# ------------------------------------------------------------------ registered figures


@figure(
    "weights_embed_unembed",
    "weights",
    "Embedding and unembedding weights",
    "Trained W_E and W_U show periodic structure along the token axis, at the key frequencies.",
    at_step=True,
)
def _embed(d: RunData) -> Figure:
    title = f"Embedding, position and unembedding matrices at step {d.step} ({d.label})"
    return matrix_heatmaps(_pick(d, ["W_E", "W_pos", "W_U"]), title)


@figure(
    "weights_attention",
    "weights",
    "Attention weights",
    "Look for structure in a few rows and columns: weight decay shrinks the directions the circuit does not use.",
    at_step=True,
)
def _attn(d: RunData) -> Figure:
    mats = _pick(d, ["W_Q", "W_K", "W_V", "W_O"])
    if not mats:
        raise SkipFigure(f"{type(d.checkpoint_model).__name__} has no attention")
    return matrix_heatmaps(mats, f"Attention matrices, heads side by side, at step {d.step} ({d.label})")


@figure(
    "weights_mlp",
    "weights",
    "MLP weights",
    "Columns of W_in (rows of W_out) belonging to dead or unused neurons decay to zero; the rest "
    "carry the key frequencies.",
    at_step=True,
)
def _mlp(d: RunData) -> Figure:
    return matrix_heatmaps(_pick(d, ["W_in", "W_out"]), f"MLP matrices at step {d.step} ({d.label})")


@figure(
    "weights_norms",
    "weights",
    "Parameter norms over training",
    "Weight decay shrinks the parameters the memorizing solution used; the fall steepens in cleanup, after grokking.",
)
def _norms(d: RunData) -> Figure:
    per = [parameter_norms(state) for _, state in d.states]
    names = [n for n in per[-1] if per[-1][n] > 0 or any(r[n] > 0 for r in per)]
    norms = {n: [r[n] for r in per] for n in names}
    return norms_over_training([s for s, _ in d.states], norms, d.events, d.phases,
                               f"Norm of each parameter over checkpoints ({d.label})")  # fmt: skip
