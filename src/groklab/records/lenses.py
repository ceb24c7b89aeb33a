"""Records of the newer lenses (DESIGN section 6): LLC, clock vs pizza, AGOP.

``analysis/lenses.json`` (:class:`Lenses`, written by every ``groklab analyze``) holds gradient
symmetricity, distance irrelevance and the AGOP circulant fractions per analysed step;
``analysis/llc.json`` (:class:`LLCSeries`, opt-in: ``groklab analyze --llc``) the LLC per chosen
snapshot; ``analysis/llc_calibration.json`` (:class:`LLCCalibration`, ``groklab llc-calibrate``)
an epsilon x n_beta grid at one step. Softmax collapse is in ``metrics.jsonl`` (every evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AgopFractions", "LLCCalibration", "LLCCell", "LLCPoint", "LLCSeries", "LensPoint", "Lenses"]


@dataclass
class LLCPoint:
    step: int
    mean: float  # over chains
    std: float  # over chains (ddof 1)
    chains: list[float]  # each chain's estimate
    init_loss: float  # L_n(w*), float64, train split
    acceptance: float | None  # mean MALA acceptance probability over chains and draws
    test_loss: float | None  # from metrics.jsonl at this step, for the figure
    seconds: float  # wall time of this estimate


@dataclass
class LLCSeries:
    settings: dict[str, float]  # epsilon, n_beta, gamma, chains, draws, burnin: the same at every step
    measured_on: str  # "train": L_n is the mean train cross-entropy, full batch, float64
    points: list[LLCPoint]
    seconds_per_snapshot: float


@dataclass
class LLCCell:
    epsilon: float
    n_beta: float
    mean: float | None  # None when a chain diverged
    std: float | None
    acceptance: float | None
    init_loss: float
    loss_trace: list[list[float]]  # [chain][draw]
    diverged: bool


@dataclass
class LLCCalibration:
    step: int
    settings: dict[str, float]  # the fixed ones (gamma, chains, draws, burnin)
    cells: list[LLCCell]


@dataclass
class AgopFractions:
    """Circulant fractions of the AGOP's blocks in phi order, main diagonal removed (DESIGN 6)."""

    aa: float | None
    bb: float | None
    ab: float | None


@dataclass
class LensPoint:
    step: int
    gradient_symmetricity: float | None
    distance_irrelevance: float | None
    agop: AgopFractions | None  # over all analysed pairs; None at steps without the AGOP
    agop_train: AgopFractions | None  # over the training pairs


@dataclass
class Lenses:
    """Clock vs pizza and AGOP over training; ``agop_baseline``: the fractions at initialisation."""

    attn_rate: float
    basis: str  # the structure map the blocks are ordered by (phi order)
    points: list[LensPoint]
    agop_baseline: AgopFractions | None  # at the first saved step (initialisation)
    agop_steps: list[int] = field(default_factory=list)  # the steps with an AGOP
    # sqrt(AGOP) [2n, 2n] per AGOP step, for the figure: a's tokens in phi order, then b's in
    # reversed phi order (the a-b block's circulant order), 4 significant digits
    agop_sqrt: dict[int, list[list[float]]] = field(default_factory=dict)
    null_reasons: dict[str, str] = field(default_factory=dict)
