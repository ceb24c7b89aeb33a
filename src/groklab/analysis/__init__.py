"""Mechanistic analysis: pure functions of tensors and records (DESIGN section 6).

- :mod:`.fourier`: the Fourier basis of Z_p, spectra, Gini, sum directions, restricted/excluded logits.
- :mod:`.neurons`: neuron frequencies, clusters and key frequencies.
- :mod:`.progress`: the progress measures of one model state.
- :mod:`.ablation`: frequency, neuron and head ablations.
- :mod:`.grokking`: grokking events, phases, success criteria and the summary record.
"""

from groklab.analysis.ablation import AblationReport, ablation_report
from groklab.analysis.grokking import (
    Criterion,
    GrokkingEvents,
    Phases,
    grokking_events,
    phase_boundaries,
    success_criteria,
    summary_record,
)
from groklab.analysis.neurons import NeuronAnalysis, analyze_neurons
from groklab.analysis.progress import Progress, progress_measures, progress_series

__all__ = [
    "AblationReport",
    "Criterion",
    "GrokkingEvents",
    "NeuronAnalysis",
    "Phases",
    "Progress",
    "ablation_report",
    "analyze_neurons",
    "grokking_events",
    "phase_boundaries",
    "progress_measures",
    "progress_series",
    "success_criteria",
    "summary_record",
]
