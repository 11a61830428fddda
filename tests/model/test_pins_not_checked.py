""" "alias pins not checked" is said only when the registry could not be reached, and then says which and why.

A model that fails on the experiment tracker for a reason of its own (here skops refusing to save
a forest whose types the stack does not trust) says nothing about the registry: the pins and
hand moves of the other models are still checked after the run.
"""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow import MlflowClient

from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    daily:
      source: {path: data/daily.csv}
  models:
    ridge:
      dataset: daily
      target: amount
      estimator: sklearn.linear_model.Ridge
      params: {alpha: 1.0}
      metrics: [rmse]
      promote: {must_beat: null}
    forest:
      dataset: daily
      target: amount
      estimator: sklearn.ensemble.RandomForestRegressor
      params: {n_estimators: TREES, random_state: 0}
      metrics: [rmse]
      promote: {must_beat: null}
"""


def test_a_tracker_failure_of_one_model_does_not_skip_the_alias_check_of_the_others(
    home, defs_dir, write_pipeline, monkeypatch
):
    frame = pd.DataFrame({"day": range(60), "amount": [d * 2.0 + d % 7 for d in range(60)]})
    write_pipeline("shop", SHOP.replace("TREES", "5"), {"data/daily.csv": frame})
    assert run(defs_dir=defs_dir).ok
    assert run(defs_dir=defs_dir, force=True).ok
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    client.set_registered_model_alias("shop.ridge", "champion", "1")  # by hand

    # Only the forest retrains, and the tracker refuses to save it: the registry is fine.
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__SERIALIZATION", "skops")
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__SKOPS_TRUSTED_TYPES", "[]")
    write_pipeline("shop", SHOP.replace("TREES", "6"))
    report = run(defs_dir=defs_dir)
    outcomes = {o.key: o for o in report.outcomes}
    assert outcomes["shop/forest"].status == "failed"
    assert "skops will not save a RandomForestRegressor" in outcomes["shop/forest"].detail
    assert outcomes["shop/ridge"].status == "reused"
    assert not [message for _, message in report.aliases if "not checked" in message], report.aliases
    assert report.aliases == [
        (
            "warning",
            "shop.ridge: champion points at v1, but Slipway last set it to v2: it was moved outside git; "
            "pin it in promote.pin to make git decide",
        )
    ]
