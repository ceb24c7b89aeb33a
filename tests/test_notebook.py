"""The example notebook runs top to bottom (it cannot rot), and says what it claims."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("transformer_lens")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_quickstart_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    ev = re.search(r"memorization step (\d+) \| grokking step (\d+)", text)
    assert ev and int(ev.group(1)) < int(ev.group(2))  # memorized, then grokked
    keys = re.search(r"key frequencies \[([\d, ]+)\]", text)
    assert keys and 1 <= len(keys.group(1).split(",")) <= 8
    diff = float(re.search(r"max \|logit difference\|: ([\d.e+-]+)", text).group(1))
    assert diff < 1e-4  # the HookedTransformer computes the same logits
    figures = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) >= 4  # the curves, two spectra and the cluster sizes were drawn
