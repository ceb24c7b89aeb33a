"""Bad input to `groklab sweep`: one line on stderr, exit 2, nothing started (no sweep directory)."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest
from sweep_helpers import GROKLAB, TINY

SPECS = {
    "unknown_key": "base: debug\ngrid: {optim.nope: [1, 2]}\n",
    "unknown_spec_key": "base: debug\ngrids: {seed: [1, 2]}\n",
    "empty_grid": "base: debug\ngrid: {}\n",
    "unequal_zip": "base: debug\nzip: {optim.lr: [1.0e-3, 2.0e-3], seed: [0, 1, 2]}\n",
    "wrong_type": "base: debug\ngrid: {optim.lr: [1.0e-3, fast]}\n",
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def not_ray() -> str:
    """An address where something accepts TCP connections but is not Ray (it hangs up at once)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except TimeoutError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


@pytest.fixture(scope="module")
def results(tmp_path_factory, not_ray) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every case at once (each is a separate process), keyed by name."""
    root = tmp_path_factory.mktemp("bad")
    cases: dict[str, list[str]] = {}
    for name, text in SPECS.items():
        (root / f"{name}.yaml").write_text(text)
        cases[name] = [str(root / f"{name}.yaml")]
    cases["unknown_executor"] = [str(TINY), "--executor", "dask"]
    cases["unreachable_address"] = [str(TINY), "--executor", "ray", "--address", f"127.0.0.1:{closed_port()}"]
    cases["address_not_ray"] = [str(TINY), "--executor", "ray", "--address", not_ray]
    cases["address_without_ray"] = [str(TINY), "--address", "127.0.0.1:6379"]
    cases["zero_workers"] = [str(TINY), "--workers", "0"]
    cases["unknown_packaged_spec"] = ["no_such_sweep"]
    procs = {
        name: (
            subprocess.Popen(
                [str(GROKLAB), "sweep", *args, "--out", str(root / f"out_{name}")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            root / f"out_{name}",
        )
        for name, args in cases.items()
    }
    out = {}
    for name, (proc, path) in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), path)
    return out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_key", "grid optim.nope=1: Key 'nope' not in 'OptimConfig'"),
        ("unknown_spec_key", "unknown key 'grids'"),
        ("empty_grid", "grid is empty"),
        ("unequal_zip", "zip lists must have equal lengths (optim.lr: 2, seed: 3)"),
        ("wrong_type", "grid optim.lr='fast': Value 'fast' of type 'str' could not be converted to Float"),
        ("unknown_executor", "--executor 'dask': unknown (choose from local, ray)"),
        ("unreachable_address", "no Ray cluster reachable (Connection refused)"),
        ("address_not_ray", "no Ray cluster answers there"),
        ("address_without_ray", "--address only applies to --executor ray"),
        ("zero_workers", "--workers must be at least 1, got 0"),
        ("unknown_packaged_spec", "unknown sweep 'no_such_sweep' (packaged: "),
    ],
)
def test_one_line_exit_2_nothing_started(results, case, message):
    proc, out = results[case]
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
