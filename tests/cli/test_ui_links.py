"""The MLflow UI, in headless Chromium, links each training back to its Dagster run and asset.

A real `mlflow server` on the test's home serves the pages; the links are read from the DOM the
UI rendered (the run's and the version's descriptions, markdown), and each page is screenshot.
"""

from __future__ import annotations

import pytest
from chromium import anchors, dom, needs_chromium, screenshot
from mlflow_server import MlflowServer

from assets.data.generators import churn
from definitions.cli.runner import run

pytestmark = [pytest.mark.slow, needs_chromium]

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


def test_the_mlflow_run_and_version_pages_link_to_the_dagster_run_and_asset(
    home, defs_dir, write_pipeline, tmp_path, monkeypatch
):
    monkeypatch.setenv("SLIPWAY_DAGSTER_UI_URL", "http://127.0.0.1:3999")
    write_pipeline("shop", SHOP, {"data/batch_000.csv": churn(500, seed=3)})
    report = run(defs_dir=defs_dir)
    model = next(o for o in report.outcomes if o.key == "shop/clf")
    server = MlflowServer(tmp_path / "mlflow", backend=f"sqlite:///{home}/mlflow.db")
    server.start()
    try:
        run_page = f"http://127.0.0.1:3999/runs/{model.dagster_run_id}"
        asset_page = "http://127.0.0.1:3999/assets/shop/clf"
        # The run's page, as the materialization's `mlflow_run` link opens it (on this server).
        experiment_and_run = model.mlflow_run.partition("/#/")[2]
        for name, url in (
            ("mlflow-run.png", f"{server.url}/#/{experiment_and_run}"),
            ("mlflow-version.png", f"{server.url}/#/models/shop.clf/versions/1"),
        ):
            links = anchors(dom(url))
            assert links.get(run_page) == model.dagster_run_id[:8], (url, links)
            assert links.get(asset_page) == "shop/clf", (url, links)
            screenshot(url, tmp_path / name)
    finally:
        server.stop()
