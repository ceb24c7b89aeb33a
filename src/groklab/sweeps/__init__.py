"""Sweeps (DESIGN section 7): a YAML spec expanded into points, run by one runner on a local
process pool or on Ray, aggregated into summary.csv, phase diagrams and an HTML page.

Modules: :mod:`.spec` (load, validate, expand, run ids), :mod:`.worker` (one point in a worker),
:mod:`.executors` (local pool, Ray), :mod:`.runner` (the loop), :mod:`.aggregate` (sweep files and
summary rows), :mod:`.figures` (phase diagrams), :mod:`.page` (the HTML page), :mod:`.display`
(the Rich progress bar).
"""

from groklab.sweeps.aggregate import SUMMARY_COLUMNS, read_sweep, summary_csv, sweep_rows
from groklab.sweeps.spec import Point, SweepError, SweepSpec, expand, load_spec, parse_spec, spec_names

__all__ = [
    "SUMMARY_COLUMNS",
    "Point",
    "SweepError",
    "SweepSpec",
    "expand",
    "load_spec",
    "parse_spec",
    "read_sweep",
    "spec_names",
    "summary_csv",
    "sweep_rows",
]
