"""Page 1: every run under the runs directory in one table, filtered by op, p, state and grokked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from groklab.conventions import event_rule
from groklab.dashboard import charts, data
from groklab.dashboard.data import RunRef

__all__ = ["COLUMNS", "GROKKED_CHOICES", "filter_rows", "render"]

COLUMNS = [
    "run", "op", "p", "train_frac", "state", "steps", "train_acc", "test_acc",
    "memorization_step", "grokking_step", "delay", "key_frequencies", "analysed",
]  # fmt: skip
INT_COLUMNS = ["p", "steps", "memorization_step", "grokking_step", "delay"]
GROKKED_CHOICES = ("any", "grokked", "not grokked")


def filter_rows(
    rows: list[dict[str, Any]], ops: list[Any], ps: list[Any], states: list[Any], grokked: str
) -> list[dict[str, Any]]:
    """Rows matching every filter; an empty selection means no filter on that column."""
    out = []
    for r in rows:
        if ops and r.get("op") not in ops or ps and r.get("p") not in ps or states and r.get("state") not in states:
            continue
        if grokked != "any" and bool(r.get("grokked")) != (grokked == "grokked"):
            continue
        out.append(r)
    return out


def _options(rows: list[dict[str, Any]], key: str) -> list[Any]:
    return sorted({r.get(key) for r in rows if r.get(key) is not None}, key=lambda v: (str(type(v)), v))


def render(runs_dir: Path, refs: list[RunRef]) -> None:
    st.header("Runs")
    if not refs:
        st.info(f"No run directories under {runs_dir} (only sweeps that have not started runs yet).")
        return
    rows = [data.row(ref) for ref in refs]
    c1, c2, c3, c4 = st.columns([1, 1, 1.2, 1.4])
    ops = c1.multiselect("op", _options(rows, "op"), key="f_op", placeholder="all")
    ps = c2.multiselect("p", _options(rows, "p"), key="f_p", placeholder="all")
    states = c3.multiselect("state", _options(rows, "state"), key="f_state", placeholder="all")
    grokked = c4.radio("grokked", GROKKED_CHOICES, key="f_grokked", horizontal=True)
    shown = filter_rows(rows, ops, ps, states, grokked)

    st.caption(f"{len(shown)} of {len(rows)} runs under {runs_dir}. Pick one on the Run page.")
    df = pd.DataFrame(shown, columns=COLUMNS)
    for c in INT_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        key="runs_table",
        column_config={
            "train_acc": st.column_config.NumberColumn(format="%.4f"),
            "test_acc": st.column_config.NumberColumn(format="%.4f"),
            "grokking_step": st.column_config.NumberColumn(help=event_rule("grokking_step")),
            "memorization_step": st.column_config.NumberColumn(help=event_rule("memorization_step")),
            "delay": st.column_config.NumberColumn(help=event_rule("delay")),
        },
    )
    if any(isinstance(r.get("memorization_step"), int) for r in shown):
        st.plotly_chart(charts.events_figure(shown), key="events_chart")
    for r in rows:
        if r.get("state") == "unreadable":
            st.warning(f"{r['run']}: unreadable: {r.get('error')}")
        elif r.get("analysis_error"):
            st.warning(f"{r['run']}: analysis unreadable: {r['analysis_error']}")
        if r.get("note"):
            st.info(f"{r['run']}: {r['note']}")
