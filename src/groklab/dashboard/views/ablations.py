"""The run page's ablation tab, drawn from ``analysis/ablation.json`` as written by the analysis."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from groklab.dashboard import charts, data
from groklab.dashboard.views import caption
from groklab.runs import Run

__all__ = ["render"]


def render(run: Run) -> None:
    if not run.has_analysis():
        st.info(f"No analysis yet: run `groklab analyze {run.path}` to see ablations and key frequencies.")
        return
    abl = data.analysis(run, "ablation")
    base = abl["baseline"]["test_acc"]
    st.caption(f"Scored on the {abl.get('split', 'test')} split; baseline test accuracy {base:.4f}.")
    left, right = st.columns(2)
    if abl.get("frequency"):
        left.plotly_chart(charts.ablation_frequency_figure(abl), key="ablation_frequency_chart")
        caption(left, "ablation_frequencies")
    else:
        left.info(f"No frequency ablation: {abl.get('frequency_reason')}")
    neurons = abl.get("neurons") or {}
    if neurons.get("cumulative"):
        right.plotly_chart(charts.ablation_cumulative_figure(neurons), key="ablation_cumulative_chart")
        caption(right, "ablation_cumulative")
        reason = neurons["cumulative"].get("n_to_below_half_reason")
        if reason:
            right.caption(reason)
    left, right = st.columns(2)
    if neurons.get("clusters"):
        left.plotly_chart(charts.ablation_clusters_figure(neurons), key="ablation_clusters_chart")
        caption(left, "ablation_clusters")
    else:
        left.info("No neuron clusters to ablate.")
    if abl.get("heads"):
        right.plotly_chart(charts.ablation_heads_figure(abl["heads"], base), key="ablation_heads_chart")
        caption(right, "ablation_heads")
    elif abl.get("heads_reason"):
        right.info(f"No head ablation: {abl['heads_reason']}")
    if neurons.get("top"):
        with st.expander("Most important neurons (single-neuron mean ablation)"):
            caption(st, "ablation_neuron_importance")
            st.dataframe(pd.DataFrame(neurons["top"]), hide_index=True, width="stretch")
