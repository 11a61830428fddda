"""A training function whose models record the rows they fit and score (for promotion tests).

``train: recording_model:fit`` in a pipeline (with ``recording_model`` on the stack's
``allowed_imports``): the features must include ``row_id``, which the model records and does
not learn from. Records go to the JSON-lines file ``$RECORDING_MODEL_LOG`` as
``{"event": "fit"|"predict", "model": uid, "ids": [...]}``. A model scored in another
process than the one that trained it (a champion loaded from the registry) waits
``$RECORDING_MODEL_DELAY`` seconds first, which holds a promotion decision open.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any


def _record(event: str, model: str, ids: Any) -> None:
    with open(os.environ["RECORDING_MODEL_LOG"], "a") as handle:
        handle.write(json.dumps({"event": event, "model": model, "ids": [int(i) for i in ids]}) + "\n")


class RecordingModel:
    """A decision tree that records the ``row_id`` of every row it fits and scores."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.uid = uuid.uuid4().hex
        self.trained_in = os.getpid()

    def _features(self, x: Any) -> Any:
        _record("predict", self.uid, x["row_id"])
        if os.getpid() != self.trained_in:
            time.sleep(float(os.environ.get("RECORDING_MODEL_DELAY", "0")))
        return x.drop(columns="row_id")

    def predict(self, x: Any) -> Any:
        return self.inner.predict(self._features(x))

    def predict_proba(self, x: Any) -> Any:
        return self.inner.predict_proba(self._features(x))


def fit(x: Any, y: Any, params: dict[str, Any]) -> RecordingModel:
    from sklearn.tree import DecisionTreeClassifier

    model = RecordingModel(DecisionTreeClassifier(random_state=0, **params).fit(x.drop(columns="row_id"), y))
    _record("fit", model.uid, x["row_id"])
    return model


def records(path: Any) -> list[dict[str, Any]]:
    """Every record written so far."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
