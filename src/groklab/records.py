"""The typed records of an analysis: dataclasses in memory, JSON on disk, one shape for both.

Every record the analysis writes (``analysis/*.json``, ``progress.jsonl``) is one of the
dataclasses below; :func:`to_json` turns it into plain JSON values and :func:`from_json` reads it
back into the same type (dict keys that are ints in memory, such as frequencies, are strings in
JSON and come back as ints). Figures, the report, the dashboard and sweeps read these types.

Conventions: frequencies are ints k in 1..(p-1)//2, ascending; key frequencies have one shape
everywhere, ``key_frequencies: list[int]`` with cluster sizes beside it as
``key_frequency_counts: {k: n}``; accuracies are fractions in [0, 1], accuracy drops percentage
points; losses nats; a value that could not be computed is None with its reason next to it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from groklab.conventions import PHASES, TEST_THRESHOLD, TRAIN_THRESHOLD

__all__ = [
    "AblationReport",
    "AblationSummary",
    "Analysis",
    "Criterion",
    "FourierRecord",
    "GrokkingEvents",
    "NeuronAnalysis",
    "Phases",
    "Progress",
    "RecordError",
    "Summary",
    "from_json",
    "to_json",
]

T = TypeVar("T")


class RecordError(ValueError):
    """A JSON value that does not have the shape of its record; the message is one line."""


# ---------------------------------------------------------------- (de)serialisation


def to_json(obj: Any) -> Any:
    """Plain JSON values of a record (dataclasses, lists, dicts with int keys, numbers, None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    return obj


def from_json(tp: type[T], data: Any, where: str = "record") -> T:
    """Read ``data`` (as :func:`to_json` wrote it) back into type ``tp``; RecordError on a mismatch."""
    return typing.cast(T, _read(tp, data, where))


def _read(tp: Any, data: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return data
    if origin in (Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        return _read(arms[0], data, where) if len(arms) == 1 else data
    if data is None:
        raise RecordError(f"{where}: missing value (expected {getattr(tp, '__name__', tp)})")
    if origin is list:
        _expect(isinstance(data, list), where, "a list", data)
        return [_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        _expect(isinstance(data, dict), where, "a mapping", data)
        key_type, value_type = args
        try:
            return {key_type(k): _read(value_type, v, f"{where}.{k}") for k, v in data.items()}
        except ValueError as e:
            raise RecordError(f"{where}: bad key ({e})") from None
    if dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, data, where)
    if tp is float:
        _expect(isinstance(data, int | float) and not isinstance(data, bool), where, "a number", data)
        return float(data)
    if tp in (int, str, bool):
        _expect(isinstance(data, tp) and (tp is bool or not isinstance(data, bool)), where, tp.__name__, data)
        return data
    return data


def _read_dataclass(cls: Any, data: Any, where: str) -> Any:
    _expect(isinstance(data, dict), where, f"a {cls.__name__} mapping", data)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _read(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecordError(f"{where}: no {f.name!r} (written by another groklab version? analyse again)")
    return cls(**kwargs)


def _expect(ok: bool, where: str, what: str, data: Any) -> None:
    if not ok:
        raise RecordError(f"{where}: expected {what}, got {type(data).__name__}")


def finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------- the basis


@dataclass
class BasisRecord:
    """The coordinates a record's frequencies live in (DESIGN section 6, "Structure maps"):
    kind identity | negate_b | discrete_log | discrete_log_div | square | none; frequencies are
    k = 1..n//2 of Z_n; ``generator`` the primitive root of a discrete log; ``reason`` why there
    is no structure map (kind none)."""

    kind: str
    n: int
    generator: int | None = None
    reason: str | None = None


# ---------------------------------------------------------------- events, phases, criteria


@dataclass
class GrokkingEvents:
    """Memorization step, grokking step and delay (see :mod:`groklab.conventions` for the rules).

    None (with ``reasons[name]``) where an event did not happen; never a made-up number.
    """

    memorization_step: int | None
    grokking_step: int | None
    delay: int | None
    last_step: int | None
    n_evals: int
    train_threshold: float = TRAIN_THRESHOLD
    test_threshold: float = TEST_THRESHOLD
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class PhaseChange:
    """Each available measure's value at the start and end of one phase."""

    phase: str
    start: int
    end: int
    measures: dict[str, dict[str, float]]  # {measure: {"start": v, "end": v}}


@dataclass
class Phases:
    """Phase boundaries (Nanda et al. 2023, section 5): memorization [first_step, memorization_end],
    circuit formation [memorization_end, circuit_formation_end], cleanup [circuit_formation_end,
    cleanup_end]. Known boundaries are ordered. A boundary that cannot be placed is None with
    ``reasons[name]``; ``rules`` says how each was placed (:mod:`groklab.analysis.phases`)."""

    first_step: int | None
    memorization_end: int | None
    circuit_formation_end: int | None
    cleanup_end: int | None
    last_step: int | None
    rules: dict[str, str]
    changes: list[PhaseChange] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    def spans(self) -> list[tuple[str, int, int]]:
        """[(phase name, start, end)] for the phases whose boundaries are known (names: PHASES)."""
        b = (self.first_step, self.memorization_end, self.circuit_formation_end, self.cleanup_end)
        return [(n, s, e) for n, s, e in zip(PHASES, b, b[1:], strict=False) if s is not None and e is not None]


@dataclass
class Criterion:
    """One success criterion: passed iff ``value <comparison> threshold`` (False when value is None)
    and any further condition the detail names holds.

    ``margin`` is the signed distance from the threshold in the passing direction: ``value -
    threshold`` for ">=" and ">", ``threshold - value`` for "<" (positive: passes with room; None
    without a value). It measures the value only: ``passed`` may still be False when a further
    condition fails (``detail`` says which)."""

    name: str
    value: float | None
    threshold: float
    comparison: str  # ">=", "<" or ">"
    passed: bool
    detail: str
    margin: float | None = None


# ---------------------------------------------------------------- progress measures


@dataclass
class Progress:
    """Progress measures of one model state (one line of ``progress.jsonl``).

    Losses in nats; accuracies in [0, 1]; trig FVE and cos_fraction in [0, 1]; ``weight_norm`` is
    the square root of ``weight_norm_sq``. Fields that are None have a reason in ``null_reasons``.
    """

    step: int | None
    key_frequencies: list[int]
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    weight_norm_sq: float
    weight_norm: float
    gini_embed: float | None  # Gini of the W_E spectrum (k = 1..(p-1)/2)
    gini_unembed: float | None  # Gini of the W_L spectrum over its output axis
    restricted_loss: float | None = None  # all p^2 pairs
    restricted_loss_test: float | None = None  # test split
    excluded_loss: float | None = None  # train split
    trig_fve_pre: float | None = None
    trig_fve_post: float | None = None
    trig_fve_logits: float | None = None
    cos_fraction: float | None = None
    null_reasons: dict[str, str] = field(default_factory=dict)


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


# ---------------------------------------------------------------- the summary and the whole analysis


@dataclass
class RunInfo:
    name: str
    op: str
    p: int
    train_frac: float
    seed: int


@dataclass
class FinalMetrics:
    step: int | None
    train_loss: float | None
    train_acc: float | None
    test_loss: float | None
    test_acc: float | None


@dataclass
class AblationSummary:
    baseline_test_acc: float
    key_frequency_acc_drop: float | None
    control_acc_drop_mean: float | None
    neurons_to_break: int | None
    reason: str | None


@dataclass
class Summary:
    """``summary.json``: the run, events, phases, key frequencies, criteria and ablation drops."""

    run: str
    config: RunInfo
    basis: BasisRecord
    state: str | None
    analysed_step: int
    n_checkpoints: int
    events: GrokkingEvents
    phases: Phases
    key_frequencies: list[int]  # what the progress measures and ablations used
    key_frequency_counts: dict[int, int]
    key_frequencies_reason: str | None  # why there are none
    embedding_key_frequencies: list[int]
    key_frequency_agreement: Agreement
    final: FinalMetrics
    criteria: list[Criterion]
    all_passed: bool
    ablation: AblationSummary
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    device: str = "cpu"


@dataclass
class Analysis:
    """Everything :func:`groklab.analyze` computes for a run (the files of ``analysis/``)."""

    summary: Summary
    progress: list[Progress]
    fourier: FourierRecord
    neurons: NeuronAnalysis
    ablation: AblationReport

    @classmethod
    def field_type(cls, name: str) -> Any:
        """The type of field ``name`` (``progress`` is ``list[Progress]``), for :func:`from_json`."""
        return typing.get_type_hints(cls)[name]

    @property
    def events(self) -> GrokkingEvents:
        return self.summary.events

    @property
    def phases(self) -> Phases:
        return self.summary.phases

    @property
    def key_frequencies(self) -> list[int]:
        return self.summary.key_frequencies

    @property
    def criteria(self) -> list[Criterion]:
        return self.summary.criteria

    @property
    def warnings(self) -> list[str]:
        return self.summary.warnings
