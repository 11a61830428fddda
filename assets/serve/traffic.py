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

import csv
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
from resources.errors import DataError
from resources.redact import redact

LOGGER = logging.getLogger("slipway.serve")
#: The columns Slipway adds to each served row.
SERVED_COLUMNS = ("prediction", "_served_at", "_version", "_alias", "_role", "_request")
# Rows kept while the store cannot be written; beyond, they are all dropped (and said).
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


def answered_since(store: Any, registry_name: str, version: str, since: float) -> Any:
    """The rows ``version`` answered in batches written after ``since`` (a timestamp), without Slipway's columns."""
    key = traffic_key(registry_name)
    names = [n for n in store.batches(key) if n[:20].isdigit() and int(n[:20]) / 1e9 > since]
    frame = store.read_batches(key, names)
    if frame.empty or "_version" not in frame.columns:
        return frame
    answered = frame[(frame["_role"] == "answered") & (frame["_version"].astype(str) == str(version))]
    return answered.drop(columns=[c for c in SERVED_COLUMNS[1:] if c in answered.columns])


def request_rows(body: bytes, content_type: str) -> list[dict[str, Any]] | None:
    """The rows of a scoring request (MLflow's JSON formats or CSV), one dict each; None when not tabular."""
    mime = content_type.split(";")[0].strip().lower()
    try:
        if mime == "text/csv":
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(body.decode()))]
        if mime != "application/json":
            return None
        data = json.loads(body)
        if "dataframe_split" in data:
            split = data["dataframe_split"]
            columns = split.get("columns") or list(range(len(split["data"][0]) if split["data"] else 0))
            return [dict(zip(columns, row, strict=True)) for row in split["data"]]
        if "dataframe_records" in data:
            rows = data["dataframe_records"]
        else:
            rows = data.get("inputs", data.get("instances"))
            if isinstance(rows, dict):  # columns of values
                rows = [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return rows
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        return None
    return None


def _number(text: str) -> Any:
    """A CSV cell as pandas would read it: an int, a float, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def request_frame(body: bytes, content_type: str) -> Any:
    """:func:`request_rows` as a DataFrame (None when not tabular)."""
    import pandas as pd

    rows = request_rows(body, content_type)
    return None if rows is None else pd.DataFrame.from_records(rows)


def served_rows(item: tuple[Any, ...]) -> list[dict[str, Any]] | None:
    """One queued request as rows with Slipway's columns; None when it cannot be read as rows."""
    body, content_type, answer, alias, version, role, at, request = item
    rows = request_rows(body, content_type)
    try:
        predictions = json.loads(answer)["predictions"]
    except (ValueError, TypeError, KeyError):
        return None
    if rows is None or not isinstance(predictions, list) or len(predictions) != len(rows):
        return None
    for row, prediction in zip(rows, predictions, strict=True):
        row["prediction"] = prediction if isinstance(prediction, (int, float, str, bool)) else json.dumps(prediction)
        row["_served_at"], row["_version"], row["_alias"], row["_role"] = at, version, alias, role
        row["_request"] = request
    return rows


def _pair(shadow: Any, item: tuple[Any, ...]) -> None:
    """Give the shadow comparison one request's predictions (not tabular: nothing to pair)."""
    _, _, answer, _, version, role, _, request = item
    try:
        predictions = json.loads(answer)["predictions"]
    except (ValueError, TypeError, KeyError):
        return
    if isinstance(predictions, list):
        shadow.add(request, role, version, predictions)


class TrafficLog:
    """Queues served requests and writes them in batches to the artifact store (see the module's docstring)."""

    def __init__(
        self, store: Any, registry_name: str, batch_rows: int = 1000, flush_seconds: float = 5.0, shadow: Any = None
    ) -> None:
        """Appends to ``store`` (an :class:`resources.artifacts.ArtifactStore`) under :func:`traffic_key`.

        ``shadow`` (a :class:`assets.serve.shadow.ShadowComparison`) is given each request's
        predictions and reports after each flush.
        """
        self.shadow = shadow
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

    def add(
        self, body: bytes, content_type: str, answer: bytes, alias: str, version: str, role: str, request: str = ""
    ) -> None:
        """Queue one answered request (parsed on the log's thread); ``request`` pairs a shadow with its answer."""
        self._queue.append((body, content_type, answer, alias, version, role, time.time(), request))
        if len(self._queue) >= self.batch_rows:
            self._wake.set()

    def flush(self) -> None:
        """Parse what is queued and write it as one batch (kept for the next flush when the store fails)."""
        with self._lock:  # one flush at a time (the thread's, and stop()'s)
            while self._queue:
                item = self._queue.popleft()
                if self.shadow is not None and item[7]:
                    _pair(self.shadow, item)
                rows = served_rows(item)
                if rows is None:
                    self.unreadable += 1
                else:
                    self._pending.extend(rows)
                    self._rows += len(rows)
            if self._pending:
                self._write()
        if self.shadow is not None:
            self.shadow.report()

    def _write(self) -> None:
        import pandas as pd

        # One table per batch; column names as text (a request may name columns by number).
        frame = pd.DataFrame.from_records(self._pending)
        frame.columns = [str(c) for c in frame.columns]
        name = f"{time.time_ns():020d}-{self.writer}.parquet"
        try:
            try:
                self.store.append_batch(self.key, name, frame)
            except DataError:  # a column whose requests disagree on its type: kept as text
                mixed = [c for c in frame.columns if frame[c].dtype == object]
                self.store.append_batch(self.key, name, frame.astype(dict.fromkeys(mixed, str)))
        except Exception as exc:
            LOGGER.warning(redact(f"{'/'.join(self.key)}: {len(frame)} served rows not written yet ({exc})"))
            if self._rows > MAX_PENDING_ROWS:
                LOGGER.warning(f"{'/'.join(self.key)}: dropped all {self._rows} served rows the store did not take")
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
