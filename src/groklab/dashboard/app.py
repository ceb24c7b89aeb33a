"""The groklab dashboard, a Streamlit script: ``groklab dashboard [--runs-dir DIR]`` serves it.

Three pages, chosen in the sidebar: the runs table, one run, and the comparison of several runs
(with the phase diagrams of sweep directories). The runs directory comes from ``--runs-dir``
after Streamlit's ``--`` (else ``$GROKLAB_RUNS_DIR``, else ``runs``) and can be changed in the
sidebar. The page and the run are mirrored in the URL (``?page=Run&run=NAME``) so a view can be
linked. Nothing here writes to the runs directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit as st

from groklab.dashboard import data
from groklab.dashboard.views import compare, figure_captions, run_page, runs_table, section

PAGES = ("Runs", "Run", "Compare")


def default_runs_dir(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir", default=os.environ.get("GROKLAB_RUNS_DIR", "runs"))
    return str(parser.parse_known_args(argv)[0].runs_dir)


def main() -> None:
    st.set_page_config(page_title="groklab", page_icon="📈", layout="wide")
    figure_captions()  # imports the figure registry on the first page, not on the first run page
    state, params = st.session_state, st.query_params
    if "runs_dir" not in state:
        state["runs_dir"] = default_runs_dir(sys.argv[1:])
    if "page" not in state:
        state["page"] = params.get("page") if params.get("page") in PAGES else PAGES[0]
    if "run" not in state and params.get("run"):
        state["run"] = params.get("run")

    with st.sidebar:
        st.title("groklab")
        page = st.radio("Page", PAGES, key="page")
        st.text_input("Runs directory", key="runs_dir", help="A directory of run and sweep directories.")
        st.caption("Read-only: this dashboard never writes to the runs directory.")
    params["page"] = page

    runs_dir = Path(state["runs_dir"]).expanduser()
    if not runs_dir.exists():
        st.error(f"The runs directory {runs_dir} does not exist. Train a run there with "
                 f"`groklab train --runs-dir {runs_dir}`, or choose another directory in the sidebar.")  # fmt: skip
        return
    if not runs_dir.is_dir():
        st.error(f"{runs_dir} is a file, not a runs directory.")
        return
    refs = data.discover(runs_dir)
    if not refs and not data.sweep_dirs(runs_dir):
        st.warning(f"The runs directory {runs_dir} is empty: no run directories (with config.yaml) and no "
                   f"sweeps (with sweep.yaml) in it. Train one with `groklab train --runs-dir {runs_dir}`.")  # fmt: skip
        return
    with section(f"{page} page"):
        if page == "Runs":
            runs_table.render(runs_dir, refs)
        elif page == "Run":
            run_page.render(refs)
        else:
            compare.render(runs_dir, refs)


main()
