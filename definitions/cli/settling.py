"""What the trainings of a `slipway run` left in MLflow, settled: after each launch and for runs found dead.

A model whose run died or failed after registering a version is settled here
(:func:`assets.model.recovery.settle`) under its promotion lock; models whose stores cannot be
reached now are kept in the instance for the next `slipway run`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.automation.rebuild import running_assets
from resources.errors import SlipwayError


def settle(engine: Any, keys: set[dg.AssetKey], keep: set[dg.AssetKey] | None = None) -> None:
    """Settle what trainings of the models among ``keys`` left in MLflow (:func:`assets.model.recovery.settle`).

    Called for the runs found dead and after each launch (a failure Dagster recorded leaves
    its model up to date, so no next training would come to settle it). Models that cannot
    be settled now (the stores are down) are kept in the instance for the next `slipway run`.
    """
    from assets.data import progress
    from assets.model import recovery

    models = sorted(
        (k for k in keys if k in engine.graph.materializable_asset_keys and engine.kind(k) == "model"),
        key=lambda k: k.to_user_string(),
    )
    keep = keep or set()
    if not models and not keep:  # the common case after a launch: no model failed
        return
    live = running_assets(engine.instance)
    left = [k for k in models if k in live]  # a live run of it (from the UI) settles its own work
    left += [k for k in keep if k in engine.graph.materializable_asset_keys and engine.kind(k) == "model"]
    tracker, registry = engine.stores.resources["experiment_tracker"], engine.stores.registry
    for i, key in enumerate(k for k in models if k not in live):
        node = engine.graph.get(key)
        registered = node.metadata["slipway/registered_model"]
        try:
            with registry.promotion_lock(registered):
                for line in recovery.settle(engine.instance, tracker, registry, key, node.group_name, registered):
                    progress.finished(key.to_user_string(), line)
        except SlipwayError as exc:  # the stores are down: the next `slipway run` tries again
            progress.finished(key.to_user_string(), f"left unsettled for the next run: {exc}")
            left += [k for k in models if k not in live][i:]
            break
    previous = recovery.unsettled(engine.instance)
    handled = {k.to_user_string() for k in [*models, *keep]}
    kept = {
        name
        for name in previous
        if name not in handled and dg.AssetKey.from_user_string(name) in engine.graph.materializable_asset_keys
    }
    forgotten = {
        name for name in previous if dg.AssetKey.from_user_string(name) not in engine.graph.materializable_asset_keys
    }
    recovery.keep_unsettled(engine.instance, sorted({k.to_user_string() for k in left} | kept), forgotten)
