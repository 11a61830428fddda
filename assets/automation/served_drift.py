"""Drift on served traffic (``retrain.on_drift: {served: true}``): what the champion was asked, not new training data.

The model's served-traffic source (:mod:`assets.serve.traffic`) gets a new data version with
each batch the servers write. For each one, the drift watch compares the rows the current
champion answered with the data it was trained on (the same comparison, report and alert as
drift on new input data). A drifted verdict retrains the model once per traffic version: the
run key names it, and once the model has trained after that traffic was observed it waits for
new traffic (a retraining that promoted a new champion is measured on what that one answers).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.serve.traffic import traffic_key
from assets.spec.policy import Policy


def served_drift(tick: Any, policy: Policy, built: Any, drift: Any) -> Any:
    """The retrain sensor's :class:`~assets.automation.retrain.Decision` when served traffic drifted, else None.

    None too for a model whose drift is not measured on served traffic.

    ``tick`` is the sensor's :class:`~assets.automation.retrain.Tick`; ``drift(policy, version)``
    evaluates the traffic at ``version`` (None: not evaluated on this tick).
    """
    from assets.automation.retrain import RUN_KEY_PREFIX, Decision

    on_drift = policy.retrain.on_drift
    if on_drift is None or not on_drift.served:
        return None
    source = dg.AssetKey(list(traffic_key(policy.registered)))
    version = tick.record.data_version(source)
    if version is None or drift is None:
        return None
    records = tick.instance.fetch_observations(source, limit=1).records
    if records and built.timestamp > records[0].timestamp:
        return None  # trained since this traffic was seen: waits for new traffic
    verdict = drift(policy, version)
    if verdict is None or not verdict.drifted:
        return None
    why = f"served traffic drifted: {verdict.summary}"
    key = dg.AssetKey.from_user_string(policy.asset)
    if tick.running(key):
        return Decision(policy.asset, "wait", f"{why}; waits: a run of it or its input is in progress")
    held = tick.held(key, policy.retrain, built.timestamp)
    if held:
        return Decision(policy.asset, "wait", f"drift ({why}) waits for {held}", "drift")
    return Decision(
        policy.asset, "retrain", f"drift: {why}", "drift", f"{RUN_KEY_PREFIX}:{policy.asset}:served:{version}"
    )
