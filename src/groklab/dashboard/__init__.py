"""The interactive dashboard (Streamlit + Plotly): runs table, run page, compare page.

Launch with ``groklab dashboard [--runs-dir DIR] [--port N] [--host H]``; this package holds what
the command needs before Streamlit starts (the app's path, the port check and the command line).
The app itself (``app.py`` and :mod:`.views`) reads run directories through :mod:`groklab.runs`
and computes through :mod:`groklab.analysis`; it never writes.
"""

from __future__ import annotations

import errno
import socket
import sys
from pathlib import Path

__all__ = ["APP_PATH", "check_port", "streamlit_argv"]

APP_PATH = Path(__file__).resolve().parent / "app.py"


def check_port(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now, else a one-line reason (port in use, bad host, ...).

    Binds and closes a listening socket the way the server will (SO_REUSEADDR), so a port held by
    a live listener is refused while one in TIME_WAIT is not.
    """
    if not 1 <= port <= 65535:
        return f"--port {port}: must be between 1 and 65535"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"--host {host}: cannot resolve ({e.strerror})"
    family, _, _, _, addr = infos[0]
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(addr)
            s.listen(1)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is already in use (choose another with --port)"
        if e.errno == errno.EADDRNOTAVAIL:
            return f"--host {host}: not an address of this machine"
        if e.errno == errno.EACCES:
            return f"port {port} on {host}: permission denied (ports below 1024 need privileges)"
        return f"cannot listen on {host}:{port} ({e.strerror})"
    return None


def streamlit_argv(runs_dir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves the app: headless, no usage statistics, no file watcher, no
    deploy button."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        "--", "--runs-dir", str(runs_dir),
    ]  # fmt: skip
