"""The dashboard's pages: :mod:`.runs_table`, :mod:`.run_page` (with :mod:`.ablations`) and
:mod:`.compare`. Each ``render`` draws into the current Streamlit page."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from groklab.config import ConfigError
from groklab.runs import RunError

__all__ = ["caption", "figure_captions", "fmt", "section"]


@functools.cache
def figure_captions() -> dict[str, str]:
    """{figure name: one-line caption} from the figure registry (:mod:`groklab.plots`), so a chart
    here says what to look for in the same words as the report; empty if the registry cannot load."""
    try:
        import groklab.plots  # noqa: F401  (importing it registers every figure)
        from groklab.plots.registry import FIGURES
    except Exception:
        return {}
    return {name: spec.caption for name, spec in FIGURES.items()}


def caption(where: Any, *names: str) -> None:
    """Write the registry's captions of ``names`` under a chart (``where``: st or a column)."""
    text = " ".join(c for n in names if (c := figure_captions().get(n)))
    if text:
        where.caption(text)


@contextmanager
def section(what: str) -> Iterator[None]:
    """Run one part of a page; if it fails, say so in its place and let the rest of the page go on.

    Known problems with a run's files (RunError, ConfigError) get their one-line message; anything
    else gets a line and the traceback folded away.
    """
    try:
        yield
    except (RunError, ConfigError) as e:
        st.error(f"{what}: {e}")
    except Exception as e:
        st.error(f"{what} failed: {type(e).__name__}: {e}")
        with st.expander("details"):
            st.code(traceback.format_exc())


def fmt(v: Any, digits: int = 4) -> str:
    """A value for a metric tile: "—" for None, floats to ``digits`` significant places."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) or "none"
    return str(v)
