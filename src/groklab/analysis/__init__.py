"""Mechanistic analysis: pure functions of tensors and records (DESIGN section 6).

- :mod:`.fourier`: the Fourier basis of Z_p, spectra, Gini, sum directions, restricted/excluded logits.
- :mod:`.neurons`: neuron frequencies, clusters and key frequencies.
- :mod:`.progress`: the progress measures of one model state.
- :mod:`.ablation`: frequency, neuron and head ablations.
- :mod:`.grokking`: grokking events, phases and success criteria.
- :mod:`.pipeline`: the analysis of a whole run.

The records they return are the dataclasses of :mod:`groklab.records`.
"""

from groklab.analysis.ablation import ablation_report
from groklab.analysis.grokking import grokking_events, phase_boundaries, success_criteria
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.progress import progress_measures, progress_series

__all__ = [
    "ablation_report",
    "analyze_neurons",
    "grokking_events",
    "phase_boundaries",
    "progress_measures",
    "progress_series",
    "success_criteria",
]
