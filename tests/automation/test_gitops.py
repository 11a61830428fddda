"""GitOps: a merged definition change rebuilds exactly what it touches, by every door.

"Merged" here is the definitions folder changed between two loads of the code location (what a
deployment rolling out a new commit does); automation is `dg.evaluate_automation_conditions` on
the reloaded code location, and `slipway run` must agree with it and with `slipway plan`.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from gitrepo import init
from views import automation_requests

from assets.automation.sensors import AUTOMATION_SENSOR
from definitions.cli.runner import run
from definitions.definitions import build_definitions
from definitions.plan.compare import plan

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
    daily:
      inputs: [orders]
      sql: select day, sum(amount) as amount, sum(visits) as visits from orders group by day
  models:
    ridge:
      dataset: daily
      target: amount
      estimator: sklearn.linear_model.Ridge
      params: {alpha: 1.0}
      metrics: [rmse]
      promote: {must_beat: null}
    tree:
      dataset: daily
      target: amount
      estimator: sklearn.tree.DecisionTreeRegressor
      params: {max_depth: 2, random_state: 0}
      metrics: [rmse]
      promote: {must_beat: null}
"""


def _orders() -> pd.DataFrame:
    days = list(range(40))
    return pd.DataFrame({"day": days * 2, "amount": [d * 3.0 + (d % 5) for d in days] * 2, "visits": days * 2})


@pytest.fixture
def shop(write_pipeline, defs_dir):
    path = write_pipeline("shop", SHOP, {"data/orders.csv": _orders()})
    init(defs_dir)
    return path


def _built(report) -> set[str]:
    return {o.key for o in report.outcomes if o.status == "built"}


def test_the_automation_sensor_is_on_by_default(home, defs_dir, shop):
    sensor = build_definitions(defs_dir).get_sensor_def(AUTOMATION_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_changed_param_rebuilds_that_model_and_nothing_else(home, defs_dir, shop, write_pipeline):
    assert _built(run(defs_dir=defs_dir)) == {"shop/orders", "shop/daily", "shop/ridge", "shop/tree"}
    assert automation_requests(defs_dir) == set()
    write_pipeline("shop", SHOP.replace("alpha: 1.0", "alpha: 5.0"))
    assert [(c.key, c.status) for c in plan(None, defs_dir, defs_dir / "stacks", defs_dir / "uv.lock").assets] == [
        ("shop/ridge", "changed")
    ]
    assert automation_requests(defs_dir) == {"shop/ridge"}
    assert _built(run(defs_dir=defs_dir)) == {"shop/ridge"}
    assert automation_requests(defs_dir) == set()


def test_an_edited_query_rebuilds_its_downstream_only_if_its_data_changes(home, defs_dir, shop, write_pipeline):
    run(defs_dir=defs_dir)
    # The same rows, written another way: the dataset rebuilds, its models do not.
    same = SHOP.replace("sum(visits) as visits from orders group by day", "sum(visits) visits from orders group by 1")
    write_pipeline("shop", same)
    assert [(c.key, c.status) for c in plan(None, defs_dir, defs_dir / "s", defs_dir / "l").assets] == [
        ("shop/daily", "changed"),
        ("shop/ridge", "stale"),
        ("shop/tree", "stale"),
    ]
    assert automation_requests(defs_dir) == {"shop/daily"}
    assert _built(run(defs_dir=defs_dir)) == {"shop/daily"}
    assert automation_requests(defs_dir) == set()
    # Different rows: the dataset rebuilds, then both models retrain.
    write_pipeline("shop", SHOP.replace("sum(visits) as visits", "max(visits) * 2 as visits"))
    assert automation_requests(defs_dir) == {"shop/daily"}
    assert _built(run(defs_dir=defs_dir)) == {"shop/daily", "shop/ridge", "shop/tree"}
    assert automation_requests(defs_dir) == set()
