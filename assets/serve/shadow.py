"""Shadow results, comparable in MLflow: the champion and the shadow on the same live requests.

For each request both answered, the rows are paired (same request, same row). Per pair of
versions it counts the rows, the rows where they agree (the same class, or the same value), and
for numbers the mean absolute difference; after each batch of served traffic it logs them as
metrics of an MLflow run ``shadow-<model>-v<answered>-vs-v<shadow>`` in the pipeline's
experiment (the metric's history is its course over time). A request whose other half never
comes (a shadow that failed) is forgotten after ``max_waiting`` newer ones.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from resources.redact import redact

LOGGER = logging.getLogger("slipway.serve")


@dataclass
class Agreement:
    """What two versions answered on the same rows."""

    rows: int = 0
    agreed: int = 0
    numeric_rows: int = 0
    abs_difference: float = 0.0
    reported: int = 0  # rows already logged

    def add(self, answered: list[Any], shadow: list[Any]) -> None:
        """Count one request's rows."""
        for a, b in zip(answered, shadow, strict=False):
            self.rows += 1
            self.agreed += int(a == b)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
                self.numeric_rows += 1
                self.abs_difference += abs(float(a) - float(b))

    def metrics(self) -> dict[str, float]:
        """The metrics logged to MLflow."""
        found = {"shadow_rows": float(self.rows), "agreement": self.agreed / self.rows if self.rows else 0.0}
        if self.numeric_rows:
            found["mean_abs_difference"] = self.abs_difference / self.numeric_rows
        return found


class ShadowComparison:
    """Pairs answered and shadow predictions by request and logs their agreement (see the module's docstring)."""

    def __init__(self, tracker: Any, registry_name: str, max_waiting: int = 10_000) -> None:
        """``tracker`` is the stack's experiment tracker (None: counted, not logged)."""
        self.tracker, self.name, self.max_waiting = tracker, registry_name, max_waiting
        self._waiting: OrderedDict[tuple[str, str], tuple[str, list[Any]]] = OrderedDict()
        self.pairs: dict[tuple[str, str], Agreement] = {}
        self._runs: dict[tuple[str, str], Any] = {}

    def add(self, request: str, role: str, version: str, predictions: list[Any]) -> None:
        """One half of a request; counted once both halves are in."""
        other = "shadow" if role == "answered" else "answered"
        half = self._waiting.pop((request, other), None)
        if half is None:
            self._waiting[(request, role)] = (version, predictions)
            while len(self._waiting) > self.max_waiting:
                self._waiting.popitem(last=False)
            return
        (answered_version, answered), (shadow_version, shadow) = (
            (half, (version, predictions)) if role == "shadow" else ((version, predictions), half)
        )
        self.pairs.setdefault((answered_version, shadow_version), Agreement()).add(answered, shadow)

    def report(self) -> None:
        """Log each pair's metrics that changed since the last report (a tracker that fails is said, not raised)."""
        if self.tracker is None:
            return
        pipeline, _, model = self.name.partition(".")
        for pair, agreement in self.pairs.items():
            if agreement.rows == agreement.reported:
                continue
            try:
                run = self._runs.get(pair)
                if run is None:
                    tags = {
                        "slipway.shadow.model": self.name,
                        "slipway.shadow.answered_version": pair[0],
                        "slipway.shadow.shadow_version": pair[1],
                    }
                    name = f"shadow-{model}-v{pair[0]}-vs-v{pair[1]}"
                    run = self._runs[pair] = self.tracker.start_run(pipeline, name, tags, int(time.time() * 1000))
                self.tracker.log(run, {}, agreement.metrics(), {})
                agreement.reported = agreement.rows
            except Exception as exc:
                LOGGER.warning(redact(f"{self.name}: shadow comparison not logged now ({exc})"))

    def close(self) -> None:
        """End the MLflow runs."""
        for run in self._runs.values():
            try:
                self.tracker.end_run(run, ok=True)
            except Exception as exc:
                LOGGER.warning(redact(f"{self.name}: shadow run not closed ({exc})"))
