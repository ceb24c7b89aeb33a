"""Numbers and names every part of groklab shares: event thresholds, phase names and colours, and
the names of the coordinates (the basis) a task's Fourier measures live in.

Defined once here; the trainer, the analysis, figures, report, dashboard and sweeps import them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from groklab.records import BasisRecord

__all__ = [
    "CLEANUP_CONFIRM_RECORDS",
    "CLEANUP_LOSS_TOL",
    "COLORS",
    "GINI_PLATEAU_TOL",
    "GROK_HOLD_ACC",
    "ONSET_DROP",
    "PHASES",
    "PHASE_COLORS",
    "PHASE_LABELS",
    "TEST_THRESHOLD",
    "TRAIN_THRESHOLD",
    "basis_name",
    "event_rule",
    "frequency_label",
    "phi_label",
    "wave_argument",
]

TRAIN_THRESHOLD = 0.99  # memorization step: first evaluation with train accuracy >= this
TEST_THRESHOLD = 0.95  # grokking step: first evaluation with test accuracy >= this, held to the end
GROK_HOLD_ACC = 0.99  # train.stop_after_grok counts the steps test accuracy has held at >= this

PHASES = ("memorization", "circuit_formation", "cleanup")  # Nanda et al. 2023, section 5
# The phase rules (groklab.analysis.phases) and their tolerances:
ONSET_DROP = (
    1.0  # circuit formation ends where ln(test loss) is this far (nats: a factor e) below its post-memorization peak
)
CLEANUP_LOSS_TOL = 0.01  # nats: test loss is "near" restricted loss (test split) when they differ by at most this
GINI_PLATEAU_TOL = (
    0.1  # W_L Gini "on its plateau": within this fraction of its rise (first record -> last) of its last value
)
CLEANUP_CONFIRM_RECORDS = 1  # later progress records at which the cleanup condition must still hold
PHASE_LABELS = {"memorization": "memorization", "circuit_formation": "circuit formation", "cleanup": "cleanup"}
PHASE_COLORS = {"memorization": "#fde0c5", "circuit_formation": "#d8ecd0", "cleanup": "#dbe4f5"}

# Line colours with a meaning, the same in matplotlib and Plotly.
COLORS = {
    "train": "#1f77b4",
    "test": "#d62728",
    "key": "#d62728",  # key frequencies, and what removing or ablating them does
    "other": "#9aa5b1",  # non-key frequencies, random controls
    "neutral": "#7f7f7f",
    "intact": "#4c72b0",  # the model before an ablation (baseline)
    "llc": "#6a3d9a",  # the learning coefficient, and softmax collapse beside test loss
    "symmetricity": "#1b9e77",  # gradient symmetricity (clock vs pizza)
    "irrelevance": "#d95f02",  # distance irrelevance (clock vs pizza)
    "agop": "#7570b3",  # AGOP circulant fractions
}


def event_rule(name: str) -> str:
    """The one-line definition of an event, for axis labels, tables and tooltips."""
    rules = {
        "memorization_step": f"first evaluation with train accuracy >= {TRAIN_THRESHOLD}",
        "grokking_step": f"first evaluation with test accuracy >= {TEST_THRESHOLD}, held to the end",
        "delay": "grokking step - memorization step",
    }
    return rules[name]


# ---------------------------------------------------------------- the basis of a task (DESIGN section 6)

_MAPS = {  # kind -> (how phi is described, phi_a(a), phi_b(b), phi_c(c)) as written in labels
    "identity": ("identity", "a", "b", "c"),
    "negate_b": ("identity, b negated", "a", "-b", "c"),
    "discrete_log": ("discrete log base {g}", "log a", "log b", "log c"),
    "discrete_log_div": ("discrete log base {g}, b negated", "log a", "-log b", "log c"),
    "square": ("squares, not one-to-one", "a^2", "b^2", "c"),
}


def basis_name(basis: BasisRecord) -> str:
    """The basis a record's frequencies live in, for titles and axis labels: "Z_97 (identity)",
    "Z_112 (discrete log base 3)", or "no structure map (why)" for kind none."""
    if basis.kind not in _MAPS:
        return f"no structure map ({basis.reason})" if basis.reason else "no structure map"
    how = _MAPS[basis.kind][0].format(g=basis.generator)
    return f"Z_{basis.n} ({how})"


def frequency_label(basis: BasisRecord) -> str:
    """An axis label for frequencies: "frequency k of Z_112 (discrete log base 3)"."""
    if basis.kind not in _MAPS:
        return "frequency k (no structure map)"
    return f"frequency k of {basis_name(basis)}"


def phi_label(basis: BasisRecord, which: str) -> str:
    """phi_a(a), phi_b(b) or phi_c(c) (``which`` is "a", "b" or "c") as labels write it: "a",
    "-b", "log c" (log = the discrete log of the basis); the bare token for kind none."""
    if basis.kind not in _MAPS:
        return which
    return _MAPS[basis.kind]["abc".index(which) + 1]


def wave_argument(basis: BasisRecord) -> str:
    """phi_a(a) + phi_b(b) - phi_c(c) as labels write it ("a+b-c", "log a + log b - log c"), the
    argument of the cos(w_k(...)) the logits are compared with."""
    a, b, c = (phi_label(basis, x) for x in "abc")
    sep = " " if basis.kind.startswith("discrete_log") else ""
    plus_b = f"{sep}-{sep}{b[1:]}" if b.startswith("-") else f"{sep}+{sep}{b}"
    return f"{a}{plus_b}{sep}-{sep}{c}"
