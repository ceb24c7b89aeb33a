"""Page 3: curves of several runs overlaid, seed groups as one entry each (median and IQR band
across seeds, each seed on demand), and a sweep directory's phase diagram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from groklab.dashboard import charts, data
from groklab.dashboard.data import RunRef
from groklab.dashboard.views import section
from groklab.runs import RunError

__all__ = ["METRICS", "render"]

METRICS = ("test_acc", "train_acc", "test_loss", "train_loss", "weight_norm")
TABLE = ["run", "state", "steps", "test_acc", "memorization_step", "grokking_step", "delay", "key_frequencies"]


def _select(labels: list[str]) -> None:
    st.session_state["compare_runs"] = labels


def render(runs_dir: Path, refs: list[RunRef]) -> None:
    st.header("Compare runs")
    labels = [r.label for r in refs]
    st.session_state["compare_runs"] = [x for x in st.session_state.get("compare_runs", []) if x in labels]
    chosen = st.multiselect("Runs", labels, key="compare_runs", placeholder="Choose runs to overlay")
    c1, c2 = st.columns(2)
    metric = c1.selectbox("Metric", METRICS, key="compare_metric")
    log_x = c2.toggle("Log step axis", value=True, key="compare_log_x")
    groups, show_members = _group_choice(refs)
    series = {}
    for label in chosen:
        ref = next(r for r in refs if r.label == label)
        try:
            series[label] = data.metrics(ref.run)
        except RunError as e:
            st.error(f"{label}: {e}")
    grouped = {g.label: _group_metrics(g) for g in groups}
    if series or grouped:
        figure = charts.compare_figure(series, metric, log_x, grouped, show_members)
        st.plotly_chart(figure, key="compare_chart")
        if grouped:
            st.caption(
                "Seed groups: the bold line is the median across the group's seeds at each evaluation step, "
                "over the seeds with a record there (a seed that stopped early no longer counts); the band is "
                "the interquartile range."
            )
    if series:
        rows = [data.row(r) for r in refs if r.label in series]
        st.dataframe(pd.DataFrame(rows, columns=TABLE), hide_index=True, width="stretch", key="compare_table")
    elif not chosen and not grouped:
        st.info("Choose runs to overlay their curves.")

    st.header("Sweeps")
    sweeps = data.sweep_dirs(runs_dir)
    if not sweeps:
        st.caption(f"No sweep directories under {runs_dir} (a sweep directory holds sweep.yaml).")
        return
    names = {(str(s.relative_to(runs_dir)) if s != runs_dir else "."): s for s in sweeps}
    name = st.selectbox("Sweep", list(names), key="sweep")
    with section(f"sweep {name}"):
        _sweep(runs_dir, names[name], labels)


def _group_choice(refs: list[RunRef]) -> tuple[list[data.SeedGroup], bool]:
    """The seed groups chosen (runs that differ only in seed and split seed), and whether to draw
    each seed of them too."""
    found = {g.label: g for g in data.seed_groups(refs)}
    if not found:
        st.caption("No seed groups here (runs whose configs differ only in seed and task.split_seed).")
        return [], False
    st.session_state["compare_groups"] = [x for x in st.session_state.get("compare_groups", []) if x in found]
    chosen = st.multiselect("Seed groups (median and IQR across seeds)", list(found), key="compare_groups",
                            placeholder="Choose seed groups")  # fmt: skip
    members = st.toggle("Show each seed of the chosen groups", value=False, key="compare_group_members")
    return [found[label] for label in chosen], members


def _group_metrics(group: data.SeedGroup) -> dict[int, list[dict[str, Any]]]:
    """seed -> evaluation records of each member of ``group`` that can be read (others are named)."""
    out = {}
    for seed, ref in zip(group.seeds, group.members, strict=True):
        try:
            out[seed] = data.metrics(ref.run)
        except RunError as e:
            st.error(f"{ref.label}: {e}")
    return out


def _sweep(runs_dir: Path, sweep_dir: Path, labels: list[str]) -> None:
    rows, varied, name, source = data.sweep_table(sweep_dir)
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("state"))] = counts.get(str(r.get("state")), 0) + 1
    grokked = sum(1 for r in rows if r.get("grokking_step") not in (None, ""))
    st.markdown(
        f"**{name}**: {len(rows)} points ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), "
        f"{grokked} grokked; varied: {', '.join(varied) or 'nothing'} (from the {source})."
    )
    ids = [str(r.get("run_id")) for r in rows]
    prefix = "" if sweep_dir == runs_dir else f"{sweep_dir.relative_to(runs_dir)}/"
    members = [lbl for lbl in (f"{prefix}runs/{i}" for i in ids) if lbl in labels]
    st.button(
        f"Overlay this sweep's {len(members)} runs above", on_click=_select, args=(members,), disabled=not members
    )
    axes = [k for k in varied if any(r.get(k) is not None for r in rows)]
    if axes:
        key = st.selectbox("x axis", axes, key="sweep_axis")
        st.plotly_chart(charts.sweep_figure(rows, key), key="sweep_chart")
    if source != "summary.csv" and varied:
        _phase_diagrams(rows, varied, name)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="sweep_table")


def _phase_diagrams(rows: list[dict[str, Any]], varied: list[str], name: str) -> None:
    """The sweeps package's own phase diagrams (matplotlib): the median over seeds and its CI."""
    from groklab.sweeps.figures import phase_diagrams  # importable: the rows came through groklab.sweeps

    figs = list(phase_diagrams(rows, varied, name).items())
    with st.expander("Phase diagrams (median over seeds and its 95% CI)", expanded=True):
        cols = st.columns(2)
        for i, (stem, fig) in enumerate(figs):
            cols[i % len(cols)].pyplot(fig, clear_figure=False)
            cols[i % len(cols)].caption(stem)
