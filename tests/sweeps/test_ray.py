"""The Ray executor against real Ray runtimes on 127.0.0.1 (no mocks): the same rows and the same
metrics as the local executor for the same points and seeds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sweep_helpers import TINY, all_metrics, groklab, read_summary

pytest.importorskip("ray")

RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 started by the test (`ray start --block`), stopped afterwards."""
    from groklab.sweeps.executors import check_address
    from groklab.sweeps.spec import SweepError

    port = free_port()
    log = open(tmp_path_factory.mktemp("ray") / "head.log", "w")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # every Ray process on 127.0.0.1
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            check_address(address, timeout=1.0)
            break
        except SweepError:
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not come up"
            time.sleep(0.5)
    yield address
    head.terminate()  # `ray start --block` stops the processes it started on SIGTERM
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    log.close()


def test_ray_cluster_gives_the_same_rows_and_metrics_as_local(tmp_path, local_sweep, ray_head):
    reference, _ = local_sweep
    out = tmp_path / "ray"
    proc = groklab("sweep", TINY, "--out", out, "--executor", "ray", "--address", ray_head, "--workers", "2")
    assert proc.returncode == 1 and "6 completed, 2 failed" in proc.stdout, proc.stdout + proc.stderr
    assert read_summary(out) == read_summary(reference)  # ids, states, accuracies, losses, errors
    assert all_metrics(out) == all_metrics(reference)
    # and running it again on the cluster retrains nothing
    before = {str(f): f.stat().st_mtime_ns for f in (out / "runs").rglob("*") if f.is_file()}
    proc = groklab("sweep", TINY, "--out", out, "--executor", "ray", "--address", ray_head, "--workers", "2")
    assert proc.returncode == 1
    assert {str(f): f.stat().st_mtime_ns for f in (out / "runs").rglob("*") if f.is_file()} == before


def test_local_ray_runtime_started_and_shut_down_by_the_sweep(tmp_path, local_sweep):
    reference, _ = local_sweep
    spec = yaml.safe_load(TINY.read_text())
    spec["grid"] = {"task.train_frac": [0.5], "seed": [0, 1]}  # two of the tiny points: same ids
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "ray_local"
    proc = groklab("sweep", tmp_path / "tiny.yaml", "--out", out, "--executor", "ray", "--workers", "2")
    assert proc.returncode == 0 and "2 completed" in proc.stdout, proc.stdout + proc.stderr
    ours, theirs = all_metrics(out), all_metrics(reference)
    assert len(ours) == 2 and ours == {k: theirs[k] for k in ours}
