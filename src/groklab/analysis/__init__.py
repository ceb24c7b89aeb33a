"""Mechanistic analysis: pure functions of tensors and records (DESIGN section 6).

- :mod:`.fourier`: the Fourier basis of Z_p, spectra, Gini, sum directions, restricted/excluded logits.
- :mod:`.neurons`: neuron frequencies, clusters and key frequencies.
- :mod:`.progress`: the progress measures of one model state.
- :mod:`.ablation`: frequency, neuron and head ablations.
- :mod:`.grokking`: grokking events and success criteria.
- :mod:`.phases`: Nanda et al.'s phases (memorization, circuit formation, cleanup) from the progress measures.
- :mod:`.pipeline`: the analysis of a whole run.

The records they return are the dataclasses of :mod:`groklab.records`.
"""

from groklab.analysis.ablation import ablation_report
from groklab.analysis.grokking import grokking_events, success_criteria
from groklab.analysis.neurons import analyze_neurons
from groklab.analysis.phases import phase_boundaries
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
