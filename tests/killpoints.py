"""Run the ``slipway`` CLI and SIGKILL it at one moment of a model's training.

``python tests/killpoints.py POINT run ...``: the process kills itself with SIGKILL (what
``kill -9`` or the out-of-memory killer does: no handler, no cleanup) at ``POINT``:

- ``run-started``: right after the MLflow run was created;
- ``registered``: right after the model version was registered;
- ``alias-moved``: right after an alias was moved to the new version;
- ``delivered``: right before the MLflow run is closed (after Dagster recorded the output);
- ``table-written``: right after the artifact store wrote an output, before Dagster recorded it.

``server-down-after-registered`` kills the MLflow server instead (the process group
``$KILL_SERVER_PGID``) right after the version was registered, and carries on;
``disk-full-after-registered`` fills the disk then (writing ``$FILL_PATH`` until no space is
left), and carries on; ``interrupt-after-alias-moved`` sends itself SIGINT (Ctrl-C) right after
an alias moved, and carries on.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

POINTS = {
    "run-started": ("resources.tracker", "MlflowTracker", "start_run", "after"),
    "registered": ("resources.mlflow_registry", "MlflowModelRegistry", "register", "after"),
    "alias-moved": ("resources.mlflow_registry", "MlflowModelRegistry", "set_alias", "after"),
    "delivered": ("resources.tracker", "MlflowTracker", "end_run", "before"),
    "table-written": ("resources.artifacts", "ArtifactStore", "write", "after"),
    "server-down-after-registered": ("resources.mlflow_registry", "MlflowModelRegistry", "register", "after"),
    "disk-full-after-registered": ("resources.mlflow_registry", "MlflowModelRegistry", "register", "after"),
    "interrupt-after-alias-moved": ("resources.mlflow_registry", "MlflowModelRegistry", "set_alias", "after"),
}


def _fill(path: str) -> None:
    with open(path, "wb", buffering=0) as handle:  # unbuffered: closing has nothing left to write
        try:
            while True:
                handle.write(b"\0" * 2**16)
        except OSError:
            pass


def install(point: str) -> None:
    """Patch the method of ``point`` so that the process dies there."""
    module, owner, method, when = POINTS[point]
    cls = getattr(importlib.import_module(module), owner)
    original = getattr(cls, method)

    fired = []

    def killing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if fired:  # once: recovery may call the same method again
            return original(self, *args, **kwargs)
        fired.append(point)
        result = original(self, *args, **kwargs) if when == "after" else None
        if point.startswith("server-down"):
            os.killpg(int(os.environ["KILL_SERVER_PGID"]), signal.SIGKILL)
            return result
        if point.startswith("interrupt"):
            os.kill(os.getpid(), signal.SIGINT)
            return result
        if point.startswith("disk-full"):
            _fill(os.environ["FILL_PATH"])
            return result
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(cls, method, killing)


if __name__ == "__main__":
    install(sys.argv[1])
    from definitions.cli.main import main

    sys.exit(main(sys.argv[2:]))
