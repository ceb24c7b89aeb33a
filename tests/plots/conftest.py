from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def data(analysed_run):
    """The figures' view of the shared grokked debug run (reads only)."""
    from groklab.plots import RunData

    return RunData(analysed_run)


@pytest.fixture(scope="session")
def mlp_data(mlp_mul_run):
    from groklab.plots import RunData

    return RunData(mlp_mul_run)


@pytest.fixture(scope="session")
def structureless_data(tmp_path_factory):
    """An analysed MLP run on a^2 + ab + b^2 mod 17 (about 3 s): an operation without a structure map."""
    from groklab.analysis.pipeline import analyze_run
    from groklab.config import load_config
    from groklab.plots import RunData
    from groklab.train import start_training

    out = tmp_path_factory.mktemp("mlp") / "x2xyy2"
    cfg = load_config("debug", ["model.arch=mlp", "task.op=x2+xy+y2", "train.steps=100"])
    run, result = start_training(cfg, out)
    assert result.state == "completed"
    run.write_analysis(analyze_run(run))
    return RunData(out)
