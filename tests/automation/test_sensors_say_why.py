"""Sensors say why: a retrain tick's own text, its log, a dataset's failing drift check, honest alert kinds.

The Dagster UI shows a tick's row without a click: its status, its cursor and what it requested.
A tick that requests a run keeps no skip reason (the daemon drops it), so the retrain sensor
writes what it decided (the trigger and the reason, or why nothing ran) as the tick's cursor,
which is also the sensor page's "Cursor"; "View logs" shows the lines it logged.
"""

from __future__ import annotations

import dagster as dg
import pytest
from views import retrain_tick, stack_instance, ui_materialize, ui_observe
from webhook import Hook

from assets.data.generators import churn
from definitions.cli.runner import run
from definitions.definitions import build_definitions

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    customers:
      source: {{path: data/batch_*.csv}}{drift}
  models:
    clf:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges, support_calls]
      estimator: sklearn.linear_model.LogisticRegression
      split: {{test_size: 0.25, by: customer_id}}
      metrics: [roc_auc]
      retrain: {{on_new_data: true}}
"""
DRIFT = "\n      drift: {method: psi, threshold: 0.2, columns: [tenure, monthly_charges]}"


@pytest.fixture
def hook(monkeypatch):
    server = Hook()
    monkeypatch.setenv("SLIPWAY_ALERTER__TYPE", "webhook")
    monkeypatch.setenv("SLIPWAY_ALERTER__BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("SLIPWAY_ALERT_WEBHOOK", server.url)
    yield server
    server.close()


@pytest.fixture
def shop(home, defs_dir, write_pipeline):
    write_pipeline("shop", SHOP.format(drift=""), {"data/batch_000.csv": churn(500, seed=3)})
    assert run(defs_dir=defs_dir).ok


def land(defs_dir, number: int, drift: float = 0.0) -> None:
    frame = churn(500, seed=20 + number, drift=drift, id_offset=10_000 * number)
    frame.to_csv(defs_dir / "shop" / "data" / f"batch_{number:03d}.csv", index=False)
    ui_observe(defs_dir)
    assert ui_materialize(defs_dir, "shop/customers").success


def test_a_tick_that_requests_a_retraining_carries_its_trigger_and_reason(home, defs_dir, shop):
    land(defs_dir, 1)
    tick = retrain_tick(defs_dir)
    assert len(tick.run_requests) == 1
    assert tick.cursor == "shop/clf: retrain: new_data: shop/customers has new data", tick.cursor


def test_a_skipped_tick_says_why_in_its_own_text_too(home, defs_dir, shop):
    tick = retrain_tick(defs_dir)
    assert not tick.run_requests
    assert tick.skip_message == "shop/clf: idle: trained on the newest data"
    assert tick.cursor == tick.skip_message


def test_view_logs_shows_what_the_tick_decided(home, defs_dir, shop):
    from dagster._core.definitions.instigation_logger import get_instigation_log_records

    from assets.automation.sensors import RETRAIN_SENSOR

    defs = build_definitions(defs_dir)
    sensor = defs.get_sensor_def(RETRAIN_SENSOR)
    repository = defs.get_repository_def()
    log_key = [repository.name, RETRAIN_SENSOR, "tick-1"]
    with stack_instance() as instance:
        # As the code server evaluates a tick for the daemon: with the tick's log key.
        with dg.SensorEvaluationContext(
            instance.get_ref(),
            log_key=log_key,
            repository_name=repository.name,
            repository_def=repository,
            sensor_name=RETRAIN_SENSOR,
            resources=defs.resources,
        ) as context:
            sensor.evaluate_tick(context)
        records = get_instigation_log_records(instance, log_key)
    assert any("shop/clf: idle: trained on the newest data" in r.get("msg", "") for r in records), records


def test_a_failing_drift_check_on_a_dataset_has_a_description_and_an_alert(
    home, defs_dir, write_pipeline, hook, monkeypatch
):
    monkeypatch.setenv("SLIPWAY_DAGSTER_UI_URL", "http://127.0.0.1:3999")
    files = {"data/batch_000.csv": churn(500, seed=3), "data/batch_001.csv": churn(500, seed=4, drift=1.5)}
    write_pipeline("shop", SHOP.format(drift=DRIFT), files)
    report = run(defs_dir=defs_dir)
    dataset = next(o for o in report.outcomes if o.key == "shop/customers")
    with stack_instance() as instance:
        (record,) = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["shop", "customers"]), "drift"), limit=1
        )
    evaluation = record.event.dagster_event.event_specific_data
    assert evaluation.passed is False
    assert evaluation.description.startswith("psi drift "), evaluation.description
    assert "above its threshold 0.2" in evaluation.description and "newer half of the rows" in evaluation.description
    (body,) = [b for b in hook.bodies if b["slipway"]["kind"] == "drift"]
    assert body["slipway"]["asset"] == "shop/customers"
    assert body["slipway"]["title"] == "shop/customers: drift detected"
    assert body["slipway"]["text"] == evaluation.description
    assert body["slipway"]["links"]["Dagster run"] == f"http://127.0.0.1:3999/runs/{dataset.dagster_run_id}"


def test_a_version_that_only_became_challenger_is_not_alerted_as_a_promotion(home, defs_dir, shop, hook):
    assert run(defs_dir=defs_dir, force=True).ok  # the same scores: v2 does not beat v1
    kinds = [(b["slipway"]["kind"], b["slipway"]["title"]) for b in hook.bodies]
    assert kinds == [("challenger", "shop.clf: v2 is challenger; champion v1 keeps serving")], kinds
    (body,) = hook.bodies
    assert "promot" not in body["text"].lower() and body["text"].startswith(":hourglass_flowing_sand: ")
