"""Partitioned datasets: declared in YAML, built, stored and checked partition by partition.

A static and a daily-partitioned source, a derived dataset per partition, and a model that reads
every partition; `slipway run` builds only the partitions that need it (missing, failed, code
changed, their files changed), and a new file builds its partition alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from definitions.cli.runner import run

pytestmark = pytest.mark.slow

PIPELINE = """
type: assets.Pipeline
attributes:
  name: sales
  datasets:
    orders:
      source: {path: "data/{region}.csv"}
      partitions: {static: [eu, us, apac]}
      expectations:
        - {expect: column_values_to_not_be_null, column: amount}
    big_orders:
      inputs: [orders]
      sql: select * from orders where amount > 1
  models:
    spend:
      dataset: big_orders
      target: amount
      features: [qty]
      estimator: sklearn.linear_model.LinearRegression
      metrics: [r2]
"""


def frame(region: str, rows: int = 30, shift: float = 0.0) -> pd.DataFrame:
    qty = [float(i % 7 + 1) for i in range(rows)]
    return pd.DataFrame({"region": region, "qty": qty, "amount": [q * 3.0 + 1.5 + shift for q in qty]})


@pytest.fixture
def sales(write_pipeline):
    files = {f"data/{r}.csv": frame(r) for r in ("eu", "us", "apac")}
    return write_pipeline("sales", PIPELINE, files).parent


def rows(report):
    return {row.key: row for row in report.outcomes}


def test_each_partition_is_built_and_a_changed_file_rebuilds_its_partition_alone(home, defs_dir, sales):
    first = rows(run(defs_dir=defs_dir))
    assert first["sales/orders"].status == "built", first["sales/orders"]
    assert first["sales/orders"].detail.startswith("3 partitions built (apac … us)")
    assert first["sales/big_orders"].status == "built"
    assert first["sales/spend"].status == "built", first["sales/spend"].detail

    again = rows(run(defs_dir=defs_dir))
    assert {k: r.status for k, r in again.items()} == dict.fromkeys(again, "reused")

    path = sales / "data" / "us.csv"
    frame("us", shift=1.0).to_csv(path, index=False)
    os.utime(path, ns=(1, 1))  # a new modification time whatever the clock's resolution
    third = rows(run(defs_dir=defs_dir))
    assert third["sales/orders"].detail.startswith("1 partition built (us)"), third["sales/orders"]
    assert third["sales/big_orders"].detail.startswith("1 partition built (us)")
    assert third["sales/spend"].status == "built"


def test_a_source_path_naming_a_partition_needs_a_partitions_block(home, defs_dir, write_pipeline):
    from graph_cases import validate_error

    path = write_pipeline(
        "sales", PIPELINE.replace("      partitions: {static: [eu, us, apac]}\n", ""), {"data/eu.csv": frame("eu")}
    )
    assert validate_error(defs_dir) == (
        f"{path}:6: pipeline sales: datasets.orders.source.path: source path 'data/{{region}}.csv' names a partition {{region}} "
        "but the dataset has no `partitions` (add one, or write the path without braces)"
    )
