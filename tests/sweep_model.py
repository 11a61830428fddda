"""A training function for sweep tests: a decision tree that records each fit, and fails on demand.

``train: sweep_model:fit`` (with ``sweep_model`` on the stack's ``allowed_imports``). Each fit
appends ``{"params": ..., "rows": ..., "pid": ..., "start": ..., "end": ...}`` to the JSON-lines file
``$SWEEP_MODEL_LOG``; a fit whose ``max_depth`` is ``$SWEEP_MODEL_FAIL_DEPTH`` raises
``ValueError`` instead (at ``$SWEEP_MODEL_STORE_DOWN_DEPTH``, the ``ResourceError`` of a store that
cannot be reached); ``$SWEEP_MODEL_SECONDS`` makes each fit last at least that long.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def fit(x: Any, y: Any, params: dict[str, Any]) -> Any:
    from sklearn.tree import DecisionTreeRegressor

    start = time.time()
    if str(params.get("max_depth")) == os.environ.get("SWEEP_MODEL_FAIL_DEPTH"):
        raise ValueError(f"depth {params['max_depth']} refused")
    if str(params.get("max_depth")) == os.environ.get("SWEEP_MODEL_STORE_DOWN_DEPTH"):
        from resources.errors import ResourceError

        raise ResourceError("experiment tracker (mlflow at sqlite:///x.db): cannot log: database is locked")
    model = DecisionTreeRegressor(**params).fit(x, y)
    time.sleep(max(0.0, float(os.environ.get("SWEEP_MODEL_SECONDS", "0")) - (time.time() - start)))
    with open(os.environ["SWEEP_MODEL_LOG"], "a") as handle:
        record = {"params": params, "rows": len(x), "pid": os.getpid(), "start": start, "end": time.time()}
        handle.write(json.dumps(record) + "\n")
    return model


def fits(path: Any) -> list[dict[str, Any]]:
    """Every fit recorded so far."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
