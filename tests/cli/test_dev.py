"""`slipway dev` serves both UIs and stops both on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.mark.slow
def test_dev_serves_dagster_and_mlflow_and_stops_on_ctrl_c(home):
    dagster_port, mlflow_port = _free_port(), _free_port()
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "slipway"),
            "dev",
            "--port",
            str(dagster_port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120) == 200
        assert _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180) == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for port in (dagster_port, mlflow_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after Ctrl-C"
