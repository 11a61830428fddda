"""The champion at a glance: a model's materialization names the version that serves, and links it.

The latest materialization of a model may be a challenger (v2) while v1 keeps serving: its
metadata names the champion with a link to the champion's MLflow model-version page, and
`slipway run`'s summary says both what was built and which version is champion.
"""

from __future__ import annotations

import dagster as dg
import pytest
from views import stack_instance

from assets.data.generators import churn
from definitions.cli.report import summary
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    customers:
      source: {path: data/batch_*.csv}
  models:
    clf:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges, support_calls]
      estimator: sklearn.linear_model.LogisticRegression
      split: {test_size: 0.25, by: customer_id}
      metrics: [roc_auc]
"""
VERSION_PAGE = "http://127.0.0.1:5000/#/models/shop.clf/versions/{}"


@pytest.fixture
def shop(write_pipeline):
    return write_pipeline("shop", SHOP, {"data/batch_000.csv": churn(500, seed=3)})


def latest_metadata(key: str) -> dict:
    with stack_instance() as instance:
        (record,) = instance.fetch_materializations(dg.AssetKey.from_user_string(key), limit=1).records
    return {k: getattr(v, "value", v) for k, v in record.asset_materialization.metadata.items()}


def test_a_challenger_names_the_champion_and_links_its_version_page(home, defs_dir, shop):
    first = run(defs_dir=defs_dir)
    metadata = latest_metadata("shop/clf")
    assert (metadata["model_version"], metadata["alias"], metadata["champion_version"]) == (1, "champion", 1)
    assert metadata["champion"] == f"[shop.clf v1]({VERSION_PAGE.format(1)})"  # markdown: a link in the UI
    assert "built v1 (champion)" in summary(first)

    again = run(defs_dir=defs_dir, force=True)  # the same scores: v2 does not beat v1
    metadata = latest_metadata("shop/clf")
    assert (metadata["model_version"], metadata["alias"], metadata["champion_version"]) == (2, "challenger", 1)
    assert metadata["champion"] == f"[shop.clf v1]({VERSION_PAGE.format(1)})"
    text = summary(again)
    assert "built v2 (challenger)" in text and "champion v1" in text, text
