"""groklab: a laboratory for grokking on modular arithmetic.

The notebook API (DESIGN section 8)::

    import groklab as gl
    run = gl.train("quick", set={"seed": 1}, out="runs/q1")
    run = gl.load_run("runs/q1")
    run.metrics                      # pandas DataFrame, one row per evaluation
    model = run.model(step=500)      # the weights saved at step 500
    result = gl.analyze(run)         # typed records, also written to runs/q1/analysis/
    run.analysis.events.grokking_step, run.analysis.key_frequencies
    fig = run.figure("fourier_embedding_spectrum")
    run.analysis.lenses              # clock vs pizza and AGOP at chosen steps (newer lenses)
    series = gl.llc(run)             # LLC at chosen snapshots (opt-in, costly), analysis/llc.json
    runs = gl.train_seeds("quick", seeds=range(8), out="runs/ens")   # one process, stacked parameters
    agg = gl.load_aggregate("runs/ens")   # statistics over seeds of an ensemble (DIR/aggregate.json)
    agg.quantity("grokking_step").median, agg.fraction_grokked
    agg = gl.aggregate("runs/ens")   # the same, computed from the members' analyses (nothing written)
"""

from __future__ import annotations

from groklab.api import aggregate, analyze, from_hooked_transformer, lenses, llc, load_aggregate, train_seeds
from groklab.config import Config, load_config
from groklab.records import Analysis, SeedAggregate
from groklab.runs import Run, RunError, load_run

__version__ = "0.1.0"

# ``groklab.train`` is the training subpackage, made callable: ``gl.train(...)`` is groklab.api.train
import groklab.train  # noqa: E402, F401  (binds the name once, so it never changes under the user)

__all__ = [
    "Analysis",
    "Config",
    "Run",
    "RunError",
    "SeedAggregate",
    "aggregate",
    "analyze",
    "from_hooked_transformer",
    "lenses",
    "llc",
    "load_aggregate",
    "load_config",
    "load_run",
    "train",
    "train_seeds",
]
