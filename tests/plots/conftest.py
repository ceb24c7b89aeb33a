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
