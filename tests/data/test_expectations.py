"""Each expectation's result belongs to that expectation; any failure blocks the models and exits 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient
from summary_rows import rows as summary_rows

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

PIPELINE = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {{path: data/orders.csv}}
      expectations:
        - {{expect: column_values_to_not_be_null, column: amount}}
        - {{expect: column_values_to_be_between, column: {middle_column}, min_value: 0, max_value: 100}}
        - {{expect: column_values_to_be_unique, column: order_id}}
  models:
    clf:
      dataset: orders
      target: returned
      features: [amount, items]
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {{max_depth: 2}}
      metrics: [accuracy]
"""


def _orders() -> pd.DataFrame:
    rows = 200
    return pd.DataFrame(
        {
            "order_id": range(rows),
            "amount": [float(i % 50) for i in range(rows)],
            # 250 is outside [0, 100]: only the middle expectation fails.
            "items": [250 if i == 7 else i % 5 for i in range(rows)],
            "returned": [i % 3 == 0 for i in range(rows)],
        }
    )


@pytest.mark.parametrize(
    ("middle_column", "failing"),
    [("items", "values out of range"), ("itemz", "misspelled column")],
    ids=["middle-fails", "misspelled-column"],
)
def test_one_failing_expectation_fails_the_dataset_blocks_models_and_exits_1(
    home, defs_dir, write_pipeline, middle_column, failing
):
    write_pipeline("shop", PIPELINE.format(middle_column=middle_column), {"data/orders.csv": _orders()})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}, "SLIPWAY_HOME": str(home)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "slipway"), "--defs", str(defs_dir), "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, f"{failing}: {done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr
    assert "2/3 expectations passed" in done.stderr
    rows = {line.split()[0]: line for line in summary_rows(done.stdout) if line.startswith("shop/")}
    assert "failed" in rows["shop/orders"] and "expect_1_column_values_to_be_between" in rows["shop/orders"]
    assert "expect_0" not in rows["shop/orders"] and "expect_2" not in rows["shop/orders"]
    assert "blocked" in rows["shop/clf"]
    assert MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db").search_registered_models() == []

    # The check results in Dagster's record belong to their own expectations too.
    key = dg.AssetKey(["shop", "orders"])
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        status = {}
        for index, name in enumerate(
            ["column_values_to_not_be_null", "column_values_to_be_between", "column_values_to_be_unique"]
        ):
            check = dg.AssetCheckKey(key, f"expect_{index}_{name}")
            history = instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
            status[index] = history[0].status.value
            evaluation = history[0].event.dagster_event.asset_check_evaluation_data
            assert evaluation.metadata["kwarg_column"].value == ("amount", middle_column, "order_id")[index]
    assert status == {0: "SUCCEEDED", 1: "FAILED", 2: "SUCCEEDED"}
