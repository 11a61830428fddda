"""MLflow links back to Dagster: each training run and registered version, each drift run, each alert.

The MLflow UI renders a run's description (the ``mlflow.note.content`` tag) and a version's
description as markdown, so the links are markdown links there; alerts carry the Dagster run
beside the MLflow link (the webhook's Slack text and its ``slipway.links``).
"""

from __future__ import annotations

import re

import pytest
from mlflow import MlflowClient
from webhook import Hook

from assets.data.generators import churn
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

DAGSTER_UI = "SLIPWAY_DAGSTER_UI_URL"

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
      promote: {gates: {roc_auc: ">= 0.5"}}
"""


@pytest.fixture
def shop(write_pipeline):
    return write_pipeline("shop", SHOP, {"data/batch_000.csv": churn(500, seed=3)})


@pytest.fixture
def hook(monkeypatch):
    server = Hook()
    monkeypatch.setenv("SLIPWAY_ALERTER__TYPE", "webhook")
    monkeypatch.setenv("SLIPWAY_ALERTER__BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("SLIPWAY_ALERT_WEBHOOK", server.url)
    yield server
    server.close()


def _client(home) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")


def _markdown_links(text: str) -> dict[str, str]:
    """``[label](url)`` links of a markdown text, by url."""
    return {url: label for label, url in re.findall(r"\[([^\]]+)\]\((\S+?)\)", text or "")}


def test_runs_and_versions_link_to_their_dagster_run_and_asset(home, defs_dir, shop, monkeypatch):
    monkeypatch.setenv(DAGSTER_UI, "http://127.0.0.1:3999/")
    report = run(defs_dir=defs_dir)
    assert report.ok, report
    model = next(o for o in report.outcomes if o.key == "shop/clf")
    client = _client(home)
    version = client.get_model_version("shop.clf", "1")
    tracked = client.get_run(version.run_id)
    run_page = f"http://127.0.0.1:3999/runs/{model.dagster_run_id}"
    asset_page = "http://127.0.0.1:3999/assets/shop/clf"
    for text in (tracked.data.tags.get("mlflow.note.content"), version.description):
        links = _markdown_links(text)
        assert links.get(run_page) == model.dagster_run_id[:8], text
        assert links.get(asset_page) == "shop/clf", text


def test_links_go_to_the_dagster_ui_slipway_dev_serves_by_default(home, defs_dir, shop, monkeypatch):
    monkeypatch.delenv(DAGSTER_UI, raising=False)
    report = run(defs_dir=defs_dir)
    model = next(o for o in report.outcomes if o.key == "shop/clf")
    text = _client(home).get_model_version("shop.clf", "1").description
    assert f"http://127.0.0.1:3000/runs/{model.dagster_run_id}" in _markdown_links(text), text


def test_alerts_link_to_the_dagster_run_as_well_as_mlflow(home, defs_dir, shop, hook, monkeypatch):
    monkeypatch.setenv(DAGSTER_UI, "http://127.0.0.1:3999")
    report = run(defs_dir=defs_dir)
    model = next(o for o in report.outcomes if o.key == "shop/clf")
    (body,) = [b for b in hook.bodies if b["slipway"]["asset"] == "shop/clf"]
    run_page = f"http://127.0.0.1:3999/runs/{model.dagster_run_id}"
    assert body["slipway"]["links"] == {"MLflow run": model.mlflow_run, "Dagster run": run_page}
    # Slack's link syntax: <url|label>, both in the text.
    assert f"<{run_page}|Dagster run>" in body["text"] and f"<{model.mlflow_run}|MLflow run>" in body["text"]


def test_a_drift_run_and_its_alert_link_to_the_model_asset(home, defs_dir, write_pipeline, hook, monkeypatch):
    from views import retrain_tick, ui_materialize, ui_observe

    monkeypatch.setenv(DAGSTER_UI, "http://127.0.0.1:3999")
    text = SHOP.replace("promote:", "retrain: {on_drift: {threshold: 0.2}}\n      promote:")
    write_pipeline("shop", text, {"data/batch_000.csv": churn(500, seed=3)})
    assert run(defs_dir=defs_dir).ok
    churn(1000, seed=21, drift=1.0, id_offset=10_000).to_csv(defs_dir / "shop/data/batch_001.csv", index=False)
    ui_observe(defs_dir)
    assert ui_materialize(defs_dir, "shop/customers").success
    retrain_tick(defs_dir)
    (drift,) = _client(home).search_runs(["1"], "tags.`slipway.kind` = 'drift'")
    asset_page = "http://127.0.0.1:3999/assets/shop/clf"
    assert _markdown_links(drift.data.tags.get("mlflow.note.content")).get(asset_page) == "shop/clf"
    (body,) = [b for b in hook.bodies if b["slipway"]["kind"] == "drift"]
    assert body["slipway"]["links"]["Dagster asset"] == asset_page  # no run: a sensor evaluated it
    assert body["slipway"]["links"]["MLflow drift report"].endswith(
        "/artifacts/drift/drift_report.html?workflowType=machine_learning"
    )
