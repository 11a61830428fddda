"""Bad data is refused with a message that says what is wrong (issue 7, part)."""

from __future__ import annotations

import pytest

from assets.data.generators import churn
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
  models:
    clf:
      dataset: orders
      target: churned
      features: [tenure, monthly_charges]
      estimator: sklearn.tree.DecisionTreeClassifier
      metrics: [accuracy, roc_auc]
"""


def _rows(report):
    return {o.key: (o.status, o.detail) for o in report.outcomes}


def test_a_single_class_target_fails_with_a_message_that_says_so(home, defs_dir, write_pipeline):
    write_pipeline("shop", SHOP, {"data/orders.csv": churn(200, seed=1).assign(churned=0)})
    rows = _rows(run(defs_dir=defs_dir))
    assert rows["shop/clf"][0] == "failed"
    assert (
        "target 'churned' has one class (0) in the training rows; a classifier needs at least two"
        in rows["shop/clf"][1]
    )


def test_a_header_only_file_is_refused_as_empty(home, defs_dir, write_pipeline):
    path = write_pipeline("shop", SHOP, {"data/orders.csv": churn(5).head(0)})
    rows = _rows(run(defs_dir=defs_dir))
    assert rows["shop/orders"] == ("failed", f"{path.parent / 'data' / 'orders.csv'}: no rows (only a header)")
    assert rows["shop/clf"][0] == "blocked"


def test_a_non_numeric_feature_names_its_column(home, defs_dir, write_pipeline):
    frame = churn(200, seed=1)
    frame["monthly_charges"] = frame["monthly_charges"].astype(str)
    frame.loc[3, "monthly_charges"] = "abc"
    write_pipeline("shop", SHOP, {"data/orders.csv": frame})
    rows = _rows(run(defs_dir=defs_dir))
    assert rows["shop/clf"][0] == "failed"
    assert "feature 'monthly_charges' is not numeric (e.g. 'abc')" in rows["shop/clf"][1]


def test_a_binary_file_is_reported_without_its_bytes(home, defs_dir, write_pipeline):
    path = write_pipeline("shop", SHOP)
    data = path.parent / "data"
    data.mkdir()
    (data / "orders.csv").write_bytes(bytes(range(256)) * 40)
    report = run(defs_dir=defs_dir)
    status, detail = _rows(report)["shop/orders"]
    assert status == "failed"
    assert detail == f"{data / 'orders.csv'}: cannot read as csv: not text (binary data?)"
    assert all(ch.isprintable() for ch in detail)
