"""The run page's ablation tab, drawn from ``analysis/ablation.json`` (a typed
:class:`~groklab.records.AblationReport`) as written by the analysis."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from groklab.dashboard import charts, data
from groklab.dashboard.views import caption
from groklab.records import AblationReport, NeuronAblation
from groklab.runs import Run

__all__ = ["render"]


def render(run: Run) -> None:
    if not run.has_analysis():
        st.info(f"No analysis yet: run `groklab analyze {run.path}` to see ablations and key frequencies.")
        return
    abl = data.ablation(run)
    st.caption(f"Scored on the {abl.split} split; baseline test accuracy {abl.baseline.test_acc:.4f}.")
    left, right = st.columns(2)
    if abl.frequency is not None:
        left.plotly_chart(charts.ablation_frequency_figure(abl), key="ablation_frequency_chart")
        caption(left, "ablation_frequencies")
    else:
        left.info(f"No frequency ablation: {abl.frequency_reason}")
    right.plotly_chart(charts.ablation_cumulative_figure(abl.neurons.cumulative), key="ablation_cumulative_chart")
    caption(right, "ablation_cumulative")
    if abl.neurons.cumulative.n_to_below_half_reason:
        right.caption(abl.neurons.cumulative.n_to_below_half_reason)
    _clusters_and_heads(abl)
    _top_neurons(abl.neurons)


def _clusters_and_heads(abl: AblationReport) -> None:
    left, right = st.columns(2)
    if abl.neurons.clusters:
        left.plotly_chart(charts.ablation_clusters_figure(abl.neurons), key="ablation_clusters_chart")
        caption(left, "ablation_clusters")
    else:
        left.info("No neuron clusters to ablate.")
    if abl.heads:
        right.plotly_chart(charts.ablation_heads_figure(abl.heads, abl.baseline.test_acc), key="ablation_heads_chart")
        caption(right, "ablation_heads")
    elif abl.heads_reason:
        right.info(f"No head ablation: {abl.heads_reason}")


def _top_neurons(neurons: NeuronAblation) -> None:
    if neurons.top:
        with st.expander("Most important neurons (single-neuron mean ablation)"):
            caption(st, "ablation_neuron_importance")
            st.dataframe(pd.DataFrame(neurons.top), hide_index=True, width="stretch")
