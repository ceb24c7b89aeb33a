"""The run page's lens tab: the newer lenses (DESIGN section 6) as the figure registry draws them
(LLC against test loss, softmax collapse, clock vs pizza measures, sqrt(AGOP)), with the report's
table of their numbers. Each figure that has no data says why and how to get it."""

from __future__ import annotations

import streamlit as st

from groklab.dashboard.views import caption
from groklab.runs import Run

__all__ = ["FIGURES", "render"]

FIGURES = ("llc_over_training", "softmax_collapse", "clock_pizza", "agop")


def render(run: Run) -> None:
    if not run.has_analysis():
        st.info(f"No analysis yet: run `groklab analyze {run.path}` (and `groklab llc {run.path}` for the LLC).")
        return
    from groklab.analysis.lenses import read_lens_record
    from groklab.plots import RunData, SkipFigure, close
    from groklab.plots.registry import FIGURES as REGISTRY
    from groklab.report import lens_rows

    analysis = run.analysis
    rows = lens_rows(analysis.lenses, read_lens_record(run, "llc"), run.metric_records())
    if rows:
        st.table({"measure": [k for k, _ in rows], "value": [v for _, v in rows]})
    data = RunData(run)
    for name in FIGURES:
        try:
            fig = REGISTRY[name].draw(data)
        except SkipFigure as e:
            st.info(f"{REGISTRY[name].title}: {e}")
            continue
        st.pyplot(fig, clear_figure=False)
        close(fig)
        caption(st, name)
