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

from groklab.records.lenses import (
    AgopFractions,
    Lenses,
    LensPoint,
    LLCCalibration,
    LLCCell,
    LLCPoint,
    LLCSeries,
)
from groklab.records.mechanism import (
    AblationReport,
    Agreement,
    Cluster,
    ClusterAblation,
    ControlAblation,
    CumulativeAblation,
    FourierRecord,
    FrequencyAblation,
    FrequencyDraw,
    GroupAblation,
    HeadAblation,
    NeuronAblation,
    NeuronAnalysis,
    NeuronRow,
    RandomCurve,
    RandomGroups,
    Score,
    Spectra,
    Spread,
)
from groklab.records.seeds import SeedAggregate, SeedMember, SeedQuantity
from groklab.records.serial import (
    RecordError,
    finite_json,
    from_json,
    to_json,
    untrusted_warning,
)
from groklab.records.summary import (
    AblationSummary,
    Analysis,
    FinalMetrics,
    RunInfo,
    Summary,
)
from groklab.records.training import (
    BasisRecord,
    Criterion,
    GrokkingEvents,
    PhaseChange,
    Phases,
    Progress,
)

__all__ = [
    "AblationReport",
    "AgopFractions",
    "LLCCalibration",
    "LLCCell",
    "LLCPoint",
    "LLCSeries",
    "LensPoint",
    "Lenses",
    "AblationSummary",
    "Agreement",
    "Analysis",
    "BasisRecord",
    "Cluster",
    "ClusterAblation",
    "ControlAblation",
    "Criterion",
    "CumulativeAblation",
    "FinalMetrics",
    "FourierRecord",
    "FrequencyAblation",
    "FrequencyDraw",
    "GrokkingEvents",
    "GroupAblation",
    "HeadAblation",
    "NeuronAblation",
    "NeuronAnalysis",
    "NeuronRow",
    "PhaseChange",
    "Phases",
    "Progress",
    "RandomCurve",
    "RandomGroups",
    "RecordError",
    "RunInfo",
    "Score",
    "SeedAggregate",
    "SeedMember",
    "SeedQuantity",
    "Spectra",
    "Spread",
    "Summary",
    "finite_json",
    "from_json",
    "to_json",
    "untrusted_warning",
]
