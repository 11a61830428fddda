"""A training function that waits for its rival: two homes finish training at the same moment.

``train: racing_model:fit`` with ``params: {barrier: NAME, max_depth: N}`` (and ``racing_model``
on the stack's ``allowed_imports``). Each training drops a file in ``$RACING_BARRIER_DIR/NAME``
and returns only once ``$RACING_PARTIES`` (default 2) trainings have arrived there, so that
everything a training does after fitting (its MLflow run, dataset, registration, alias) is done
by both processes at once. A rival that never comes fails the training after 240 s.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any


def fit(x: Any, y: Any, params: dict[str, Any]) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    params = dict(params)
    folder = Path(os.environ["RACING_BARRIER_DIR"]) / str(params.pop("barrier"))
    model = DecisionTreeClassifier(random_state=0, **params).fit(x, y)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / uuid.uuid4().hex).touch()
    parties = int(os.environ.get("RACING_PARTIES", "2"))
    deadline = time.monotonic() + 240
    while len(list(folder.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"racing_model: no rival arrived at {folder}")
        time.sleep(0.002)
    return model
