from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data(analysed_run):
    """The figures' view of the shared grokked debug run (reads only)."""
    from groklab.plots import RunData

    return RunData(analysed_run)


@pytest.fixture(scope="session")
def mlp_mul_run(tmp_path_factory) -> Path:
    """An analysed MLP run on multiplication: no attention, no sum directions (about 3 s)."""
    from groklab.analysis.pipeline import analyze_run
    from groklab.config import load_config
    from groklab.train import start_training

    out = tmp_path_factory.mktemp("mlp") / "mul"
    run, result = start_training(load_config("debug", ["model.arch=mlp", "task.op=mul", "train.steps=100"]), out)
    assert result.state == "completed"
    run.write_analysis(analyze_run(run))
    return out


@pytest.fixture(scope="session")
def mlp_data(mlp_mul_run):
    from groklab.plots import RunData

    return RunData(mlp_mul_run)
