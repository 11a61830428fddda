"""`slipway run` loads the deployed code location; a person's run also retrains what only new data made stale.

The model rule (rebuild predicate and ``GitChange``) is the same object in both; the command
reads, from Dagster's evaluation of it, which models ``GitChange`` alone held back.
"""

from __future__ import annotations

import dagster as dg
import pytest
from views import automation_requests

from assets.automation.rules import MODEL_RULE
from assets.data.generators import regression
from definitions.cli.execute import Engine
from definitions.cli.runner import run
from definitions.definitions import build_definitions
from stacks import load_stack

pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
  models:
    fit:
      dataset: orders
      target: y
      estimator: sklearn.linear_model.Ridge
      metrics: [rmse]
"""
MODEL = dg.AssetKey(["shop", "fit"])


def _statuses(report) -> dict[str, tuple[str, str]]:
    return {o.key: (o.status, o.reason) for o in report.outcomes}


def test_a_person_s_run_retrains_on_new_data_from_the_same_rules_the_sensors_use(home, defs_dir, write_pipeline):
    folder = write_pipeline("shop", SHOP, {"data/orders.csv": regression(rows=200, seed=0, features=3)})
    assert run(defs_dir=defs_dir).ok
    regression(rows=300, seed=1, features=3).to_csv(folder.parent / "data" / "orders.csv", index=False)

    # The code location `slipway run` loads carries the deployed model rule.
    engine = Engine(load_stack(), defs_dir)
    try:
        deployed = build_definitions(defs_dir).resolve_asset_graph().get(MODEL).automation_condition
        assert engine.graph.get(MODEL).automation_condition.get_label() == deployed.get_label() == MODEL_RULE
    finally:
        engine.close()

    report = run(defs_dir=defs_dir)
    assert _statuses(report)["shop/orders"][0] == "built"
    assert _statuses(report)["shop/fit"] == ("built", "shop/orders has new data")
    # By itself (the automation sensor), the model waits for its retrain policy: it has none.
    assert "shop/fit" not in automation_requests(defs_dir)
