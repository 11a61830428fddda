"""``slipway dev``: the Dagster UI and the MLflow UI on the local stack, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from resources.errors import StackError
from stacks import LoadedStack, load_stack


def prepare(stack_name: str | None = None) -> LoadedStack:
    """Load the stack and point ``DAGSTER_HOME`` at its instance (written if missing)."""
    from stacks.build import prepare_instance

    loaded = load_stack(stack_name)
    os.environ["DAGSTER_HOME"] = str(prepare_instance(loaded.stack))
    return loaded


def commands(loaded: LoadedStack, dagster_port: int, mlflow_port: int) -> list[list[str]]:
    """The two server command lines."""
    bin_dir = Path(sys.executable).parent
    tracker = loaded.stack.experiment_tracker
    dagster = [
        str(bin_dir / "dagster"),
        "dev",
        "-m",
        "definitions.definitions",
        "-p",
        str(dagster_port),
        "-h",
        "127.0.0.1",
    ]
    mlflow = [
        str(bin_dir / "mlflow"),
        "server",
        "--backend-store-uri",
        tracker.tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
        "--workers",
        "1",
    ]
    if tracker.artifact_location:
        mlflow += ["--default-artifact-root", Path(tracker.artifact_location).as_uri()]
    return [dagster, mlflow]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            # Each server runs in its own process group: dagster dev's children go with it.
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(loaded: LoadedStack, dagster_port: int = 3000, mlflow_port: int = 5000) -> int:
    """Start both UIs; return when either exits or on Ctrl-C / SIGTERM, stopping both."""
    if loaded.stack.orchestrator.type != "in_process":
        raise StackError(f"stack {loaded.name}: `slipway dev` runs the local stack only")
    env = {
        # Runs launched from this UI link to the MLflow UI started beside it, unless set.
        "SLIPWAY_EXPERIMENT_TRACKER__UI_URL": f"http://127.0.0.1:{mlflow_port}",
        **os.environ,
        "SLIPWAY_STACK": str(loaded.path) if loaded.path.parent.name != "stacks" else loaded.name,
    }
    procs = [
        subprocess.Popen(cmd, env=env, start_new_session=True) for cmd in commands(loaded, dagster_port, mlflow_port)
    ]
    print(
        f"Dagster UI: http://127.0.0.1:{dagster_port}   MLflow UI: http://127.0.0.1:{mlflow_port}   (Ctrl-C stops both)"
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping…", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(procs)
    return 0
