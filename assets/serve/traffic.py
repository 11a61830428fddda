"""Served traffic: what a served model was asked and answered, kept as a dataset the drift watch reads.

Each answered (and shadow) request's rows are appended, batched, to the artifact store under
``<pipeline>/served_<model>/`` (one Parquet batch per flush: every ``batch_rows`` rows or
``flush_seconds``, and when the server stops), with the prediction, the version and alias that
answered, the role (``answered``, ``shadow``) and the time. The request path only queues the
raw bodies; they are parsed and written on the log's own thread.

In Dagster the batches are the observable source ``<pipeline>/served_<model>`` (its data version
names the batches, seen by the new-files sensor), and a model's ``retrain.on_drift: {served: true}``
measures drift on the rows its champion answered, against the data the champion was trained on.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from assets.spec.versions import combine

LOGGER = logging.getLogger("slipway.serve")
#: The columns Slipway adds to each served row.
SERVED_COLUMNS = ("prediction", "_served_at", "_version", "_alias", "_role")
# Rows kept while the store cannot be written; beyond, the oldest are dropped (and said).
MAX_PENDING_ROWS = 200_000


def traffic_name(model: str) -> str:
    """The source asset's name of a model's served traffic (``served_clf``)."""
    return f"served_{model}"


def traffic_key(registry_name: str) -> tuple[str, str]:
    """Where ``pipeline.model``'s served traffic is kept in the artifact store (and its source key)."""
    pipeline, _, model = registry_name.partition(".")
    return pipeline, traffic_name(model)


def traffic_version(names: list[str]) -> str:
    """The data version of served traffic made of the batches ``names``."""
    return combine(*names) if names else "no traffic"


def request_frame(body: bytes, content_type: str) -> Any:
    """The rows of a scoring request (MLflow's JSON formats or CSV) as a DataFrame; None when not tabular."""
    import pandas as pd

    mime = content_type.split(";")[0].strip().lower()
    try:
        if mime == "text/csv":
            return pd.read_csv(io.BytesIO(body))
        if mime != "application/json":
            return None
        data = json.loads(body)
        if "dataframe_split" in data:
            split = data["dataframe_split"]
            return pd.DataFrame(split["data"], columns=split.get("columns"))
        if "dataframe_records" in data:
            return pd.DataFrame.from_records(data["dataframe_records"])
        rows = data.get("inputs", data.get("instances"))
        if isinstance(rows, dict) or (isinstance(rows, list) and rows and isinstance(rows[0], dict)):
            return pd.DataFrame(rows)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return None


def served_rows(item: tuple[Any, ...]) -> Any:
    """One queued request as rows with Slipway's columns; None when it cannot be read as rows."""
    body, content_type, answer, alias, version, role, at = item
    frame = request_frame(body, content_type)
    try:
        predictions = json.loads(answer)["predictions"]
    except (ValueError, TypeError, KeyError):
        return None
    if frame is None or not isinstance(predictions, list) or len(predictions) != len(frame):
        return None
    frame["prediction"] = [p if isinstance(p, (int, float, str, bool)) else json.dumps(p) for p in predictions]
    frame["_served_at"], frame["_version"], frame["_alias"], frame["_role"] = at, version, alias, role
    return frame


class TrafficLog:
    """Queues served requests and writes them in batches to the artifact store (see the module's docstring)."""

    def __init__(self, store: Any, registry_name: str, batch_rows: int = 1000, flush_seconds: float = 5.0) -> None:
        """Appends to ``store`` (an :class:`resources.artifacts.ArtifactStore`) under :func:`traffic_key`."""
        self.store, self.key = store, traffic_key(registry_name)
        self.batch_rows, self.flush_seconds = batch_rows, flush_seconds
        self.writer = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._queue: deque[tuple[Any, ...]] = deque()
        self._pending: list[Any] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.unreadable = 0

    def add(self, body: bytes, content_type: str, answer: bytes, alias: str, version: str, role: str) -> None:
        """Queue one answered request (cheap: parsed on the log's thread)."""
        self._queue.append((body, content_type, answer, alias, version, role, time.time()))
        if len(self._queue) >= self.batch_rows:
            self._wake.set()

    def flush(self) -> None:
        """Parse what is queued and write it as one batch (kept for the next flush when the store fails)."""
        import pandas as pd

        while self._queue:
            rows = served_rows(self._queue.popleft())
            if rows is None:
                self.unreadable += 1
            else:
                self._pending.append(rows)
                self._rows += len(rows)
        with self._lock:
            if not self._pending:
                return
            frame = pd.concat(self._pending, ignore_index=True)
            name = f"{time.time_ns():020d}-{self.writer}.parquet"
            try:
                self.store.append_batch(self.key, name, frame)
            except Exception as exc:
                LOGGER.warning(f"{'/'.join(self.key)}: {len(frame)} served rows not written yet ({exc})")
                if self._rows > MAX_PENDING_ROWS:
                    LOGGER.warning(f"{'/'.join(self.key)}: dropped {self._rows} served rows the store did not take")
                    self._pending, self._rows = [], 0
                return
            self.written += len(frame)
            self._pending, self._rows = [], 0

    def start(self) -> None:
        """Flush every ``flush_seconds`` (sooner when ``batch_rows`` are queued) on a daemon thread."""

        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                self.flush()

        self._thread = threading.Thread(target=loop, name="slipway-served-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
