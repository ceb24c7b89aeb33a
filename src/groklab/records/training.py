"""Records of training as it went: the basis of the frequencies, grokking events, phases, success
criteria and the progress measures of one saved step."""

from __future__ import annotations

from dataclasses import dataclass, field

from groklab.conventions import PHASES, TEST_THRESHOLD, TRAIN_THRESHOLD

__all__ = ["BasisRecord", "Criterion", "GrokkingEvents", "PhaseChange", "Phases", "Progress"]


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
    measures: dict[str, dict[str, float]]  # {measure: {"start": v, "end": v, "start_step": s, "end_step": s}}


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
