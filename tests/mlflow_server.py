"""A real ``mlflow server`` on 127.0.0.1 for tests (started and killed by the test)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (its own process group, so it can be killed whole)."""

    def __init__(
        self,
        folder: Path,
        backend: str | None = None,
        artifacts: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """A server on a free port; its backend store and artifacts in ``folder`` unless given (a URL, ``s3://…``)."""
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend = backend or f"sqlite:///{folder}/server.db"
        self.artifacts = artifacts or str(folder / "artifacts")
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mlflow = Path(sys.executable).parent / "mlflow"
        command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        command += ["--backend-store-uri", self.backend, "--artifacts-destination", self.artifacts]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = self.folder / "server.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                start_new_session=True,
                stdout=log,
                stderr=log,
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env},
            )
        wait_until_it_answers(self.process, f"{self.url}/health", self.log, seconds=60)

    def stop(self) -> None:
        stop_group(self.process)


def wait_until_it_answers(process: subprocess.Popen[bytes], url: str, log: Path, seconds: float) -> None:
    """Return once ``url`` answers 200; fail with the server's log if it exits or stays silent."""
    for _ in range(int(seconds * 10)):
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert process.poll() is None, f"{process.args[0]} exited: {log.read_text()[-2000:]}"
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {seconds:.0f} s")


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """Kill a server started in its own session, with everything it started."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
