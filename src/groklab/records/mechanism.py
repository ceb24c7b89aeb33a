"""Records of one model state taken apart: neurons and key frequencies, ablations, Fourier spectra."""

from __future__ import annotations

from dataclasses import dataclass, field

from groklab.records.training import BasisRecord

__all__ = [
    "AblationReport",
    "Agreement",
    "Cluster",
    "ClusterAblation",
    "ControlAblation",
    "CumulativeAblation",
    "FourierRecord",
    "FrequencyAblation",
    "FrequencyDraw",
    "GroupAblation",
    "HeadAblation",
    "NeuronAblation",
    "NeuronAnalysis",
    "NeuronRow",
    "RandomCurve",
    "RandomGroups",
    "Score",
    "Spectra",
    "Spread",
]


# ---------------------------------------------------------------- neurons


@dataclass
class Cluster:
    k: int
    size: int
    neurons: list[int]


@dataclass
class Agreement:
    """How the neuron-cluster and embedding key-frequency lists agree (jaccard 1.0 when both empty)."""

    both: list[int]
    only_neurons: list[int]
    only_embedding: list[int]
    jaccard: float
    identical: bool


@dataclass
class NeuronAnalysis:
    """Neuron frequencies and key frequencies of one model state (``neurons.json``).

    ``defined`` is False (with ``reason``) when the activations do not form a full p x p table
    (div excludes b = 0): the neuron fields are then empty, the embedding-based list is still given.
    """

    p: int
    basis: BasisRecord
    d_mlp: int
    threshold: float
    min_cluster_size: float
    defined: bool
    reason: str | None  # why neuron frequencies are undefined (defined False)
    neuron_frequency: list[int]  # [d_mlp]: k, or 0 for a zero-variance neuron
    neuron_score: list[float]  # [d_mlp]
    fve: list[list[float]]  # [d_mlp][n_freq]: FVE of frequency k at column k-1
    clusters: list[Cluster]  # ascending in k
    n_clustered: int
    key_frequencies: list[int]  # ascending; empty with key_frequencies_reason
    key_frequency_counts: dict[int, int]  # cluster size of each key frequency
    key_frequencies_reason: str | None
    embedding_norms: list[float] | None  # [n_freq]: entry k-1 is frequency k; None without a token map
    embedding_null: float | None  # the norm a frequency must exceed to stand out (shuffled-basis null)
    embedding_key_frequencies: list[int]
    embedding_reason: str | None  # why the embedding list is empty (or its spectrum undefined)
    agreement: Agreement

    def cluster_dict(self) -> dict[int, list[int]]:
        return {c.k: list(c.neurons) for c in self.clusters}


# ---------------------------------------------------------------- ablations


@dataclass
class Score:
    test_acc: float
    test_loss: float


@dataclass
class Spread:
    """Mean and sample standard deviation over draws (std 0 for a single draw)."""

    mean: float
    std: float


@dataclass
class FrequencyDraw:
    frequencies: list[int]
    test_acc: float
    test_loss: float
    acc_drop: float  # percentage points


@dataclass
class ControlAblation:
    n_frequencies: int
    note: str | None
    draws: list[FrequencyDraw]
    acc_drop: Spread | None
    test_acc_mean: float | None


@dataclass
class FrequencyAblation:
    baseline: Score  # the intact model on the pairs scored here
    pairs: str  # which test pairs are scored (the analysed ones: in the task's basis)
    key: FrequencyDraw  # the key frequencies removed from W_E
    control: ControlAblation  # the same number of random non-key frequencies


@dataclass
class NeuronRow:
    neuron: int
    frequency: int | None
    delta_loss: float
    test_acc: float
    test_loss: float


@dataclass
class RandomGroups:
    n_draws: int
    pool: str
    test_acc: Spread
    test_loss: Spread


@dataclass
class ClusterAblation:
    k: int
    size: int
    ablated: Score
    random: RandomGroups


@dataclass
class GroupAblation:
    size: int
    test_acc: float
    test_loss: float


@dataclass
class RandomCurve:
    n_draws: int
    n_ablated: list[int]
    test_acc_mean: list[float]
    test_acc_std: list[float]
    test_acc_min: list[float]
    test_acc_max: list[float]
    test_loss_mean: list[float]
    test_loss_std: list[float]


@dataclass
class CumulativeAblation:
    order: list[int]  # neurons in decreasing importance
    n_ablated: list[int]
    test_acc: list[float]  # at every count in n_ablated
    loss_n_ablated: list[int]  # the grid where the loss is computed
    test_loss: list[float]
    random: RandomCurve
    n_to_below_half: int | None
    n_to_below_half_reason: str | None


@dataclass
class NeuronAblation:
    baseline: Score
    importance: list[float]  # [d_mlp]: rise in test loss when the neuron alone is mean-ablated
    top: list[NeuronRow]
    clusters: list[ClusterAblation]
    all_clusters: GroupAblation
    cumulative: CumulativeAblation


@dataclass
class HeadAblation:
    layer: int
    head: int
    test_acc: float
    test_loss: float
    acc_drop: float


@dataclass
class AblationReport:
    """Every ablation of one model state (``ablation.json``). ``frequency`` is None with
    ``frequency_reason`` without key frequencies; ``heads`` None with ``heads_reason`` without heads."""

    split: str
    basis: BasisRecord
    baseline: Score
    key_frequencies: list[int]
    frequency: FrequencyAblation | None
    frequency_reason: str | None
    neurons: NeuronAblation
    heads: list[HeadAblation] | None
    heads_reason: str | None


# ---------------------------------------------------------------- Fourier


@dataclass
class Spectra:
    step: int
    embedding_norms: list[float] | None
    unembed_norms: list[float] | None
    cos_coefficients: list[float] | None


@dataclass
class FourierRecord:
    """Spectra of the analysed checkpoint and over checkpoints (``fourier.json``)."""

    p: int
    basis: BasisRecord
    frequencies: list[int]  # k = 1..n//2 of the basis
    basis_labels: list[str]  # the n rows of F: const, cos 1, sin 1, ...
    embedding_norms: list[float] | None  # None (with reasons["embedding_norms"]) without a token map
    unembed_norms: list[float] | None
    key_frequencies: list[int]
    over_checkpoints: list[Spectra]
    reasons: dict[str, str] = field(default_factory=dict)
    logit_norms: list[list[float]] | None = None  # [n][n] 2-D Fourier norms of the logits
    logit_norms_reason: str | None = None
    cos_coefficients: dict[int, float] | None = None
    cos_coefficients_reason: str | None = None
