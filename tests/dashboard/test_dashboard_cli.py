"""`groklab dashboard`: what it launches, and the bad input it refuses before launching."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from groklab.dashboard import APP_PATH, check_port, streamlit_argv


def test_command_line_binds_localhost_and_passes_the_runs_dir(tmp_path):
    argv = streamlit_argv(tmp_path, 8600)
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    opts = dict(zip(argv[5:-3:2], argv[6:-3:2], strict=True))
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8600"
    assert opts["--server.headless"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert argv[-3:] == ["--", "--runs-dir", str(tmp_path)]
    assert Path(APP_PATH).is_file()


def test_port_in_use_is_one_line_and_exit_2(cli, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert (
            check_port("127.0.0.1", port) == f"port {port} on 127.0.0.1 is already in use (choose another with --port)"
        )
        r = cli("dashboard", "--runs-dir", tmp_path, "--port", port, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use (choose another with --port)"
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_bad_port_and_host_are_refused():  # the command turns these into the same one-line exit 2
    assert check_port("127.0.0.1", 0) == "--port 0: must be between 1 and 65535"
    assert check_port("127.0.0.1", 70000) == "--port 70000: must be between 1 and 65535"
    assert check_port("no-such-host.invalid", 8501).startswith("--host no-such-host.invalid: cannot resolve")
    assert check_port("192.0.2.1", 8501) == "--host 192.0.2.1: not an address of this machine"  # TEST-NET-1
