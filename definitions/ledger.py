"""The ledger: what the last successful materialization of each asset was built from.

It is a small JSON file per stack under ``$SLIPWAY_HOME``, written by ``slipway run`` after a
run, so that the next run can tell what is unchanged without starting Dagster or MLflow. The
Dagster event log stays the record (with the same code and data versions); the ledger is the
fast index over it.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from resources.errors import SlipwayError


class Ledger:
    """Asset key -> record of its last successful build."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.records: dict[str, dict[str, Any]] = json.loads(path.read_text())
        except FileNotFoundError:
            self.records = {}
        except json.JSONDecodeError:
            # A corrupt index only costs a rebuild; the Dagster event log is the record.
            self.records = {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The record of ``key``, if it was ever built successfully."""
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Replace the record of ``key``."""
        self.records[key] = record

    def save(self) -> None:
        """Write atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.records, indent=2, sort_keys=True))
        os.replace(tmp, self.path)


def ledger_path(home: Path, stack: str) -> Path:
    """The ledger file of ``stack`` under ``home``."""
    return home / "state" / f"ledger-{Path(stack).stem}.json"


@contextmanager
def exclusive(home: Path) -> Iterator[None]:
    """Hold ``$SLIPWAY_HOME``'s run lock; fail at once if another ``slipway run`` holds it.

    Two runs on one home would race on the ledger, the artifacts and the SQLite stores.
    """
    path = home / "state" / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SlipwayError(
                f"another `slipway run` is using {home}; wait for it to finish or set SLIPWAY_HOME to another folder"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
