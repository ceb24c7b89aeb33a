"""The summary of a run's analysis and the whole :class:`Analysis` (the files of ``analysis/``)."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from groklab.records.lenses import Lenses
from groklab.records.mechanism import AblationReport, Agreement, FourierRecord, NeuronAnalysis
from groklab.records.training import BasisRecord, Criterion, GrokkingEvents, Phases, Progress

__all__ = ["AblationSummary", "Analysis", "FinalMetrics", "RunInfo", "Summary"]


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
    untrusted: dict[str, str] = field(default_factory=dict)  # measure path -> why it is null (NaN, +inf, -inf)


@dataclass
class Analysis:
    """Everything :func:`groklab.analyze` computes for a run (the files of ``analysis/``)."""

    summary: Summary
    progress: list[Progress]
    fourier: FourierRecord
    neurons: NeuronAnalysis
    ablation: AblationReport
    lenses: Lenses | None = None  # lenses.json: clock vs pizza and AGOP (None: analysed before they existed)

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
