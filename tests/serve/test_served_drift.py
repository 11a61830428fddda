"""Served traffic closes the loop: what the champion answered is kept, observed, and drift on it retrains.

The router here is the one `slipway serve` runs, with MLflow's scoring app for the real
registered version, driven in-process (no socket); the sensors are ticked as the daemon does.
"""

from __future__ import annotations

import asyncio

import dagster as dg
import httpx
import pytest
from views import launch, retrain_tick, stack_instance

from assets.automation.sensors import NEW_FILES_SENSOR
from assets.data.generators import churn
from assets.serve.server import Follower, Router, Routes
from assets.serve.traffic import TrafficLog
from definitions.cli.runner import run
from definitions.definitions import build_definitions
from stacks import load_stack
from stacks.build import build_resources

pytestmark = pytest.mark.slow

FEATURES = ["tenure", "monthly_charges", "support_calls"]
SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/*.csv}
  models:
    clf:
      dataset: orders
      target: churned
      features: [tenure, monthly_charges, support_calls]
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3, random_state: 0}
      metrics: [roc_auc]
      promote: {gates: {roc_auc: ">= 0.5"}, must_beat: null}
      serve: {alias: champion}
      retrain: {on_drift: {served: true, method: psi, threshold: 0.25}}
"""


def _serve(rows, shift: float) -> TrafficLog:
    """Send ``rows`` (shifted by ``shift``) through the router, 20 a request; the log, flushed."""
    resources = build_resources(load_stack(None).stack)
    traffic = TrafficLog(resources["io_manager"], "shop.clf")
    router = Router("shop.clf", Routes("champion"), traffic=traffic)
    Follower(router, resources["model_registry"]).refresh()
    frame = rows[FEATURES].astype(float)
    frame["tenure"] += shift * 40
    frame["monthly_charges"] *= 1 + shift * 2

    async def go():
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for start in range(0, len(frame), 20):
                part = frame.iloc[start : start + 20]
                body = {"dataframe_split": {"columns": FEATURES, "data": part.values.tolist()}}
                answer = await client.post("/invocations", json=body)
                assert answer.status_code == 200, answer.text

    asyncio.run(go())
    traffic.flush()
    return traffic


def _observe_tick(defs_dir):
    defs = build_definitions(defs_dir)
    sensor = defs.get_sensor_def(NEW_FILES_SENSOR)
    with stack_instance() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        return sensor.evaluate_tick(context).skip_message


def _last_drift() -> dict:
    with stack_instance() as instance:
        record = instance.fetch_observations(dg.AssetKey(["shop", "clf"]), limit=1).records[0]
    metadata = record.event_log_entry.asset_observation.metadata
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _said(result) -> str:
    return result.skip_message or " ".join(r.tags.get("slipway/retrain_reason", "") for r in result.run_requests)


def test_drift_on_what_the_champion_answered_retrains_it_once(home, defs_dir, write_pipeline):
    write_pipeline("shop", SHOP, {"data/orders.csv": churn(400, seed=1)})
    assert run(defs_dir=defs_dir).ok

    # Traffic like the training data: kept, observed, no drift.
    calm = _serve(churn(200, seed=2), shift=0)
    assert calm.written == 200 and calm.unreadable == 0
    assert "shop/served_clf (1 batches)" in _observe_tick(defs_dir)
    quiet = retrain_tick(defs_dir)
    assert quiet.run_requests == [], _said(quiet)
    assert "shop/clf: idle: trained on the newest data" in _said(quiet), _said(quiet)
    calm_verdict = _last_drift()
    assert calm_verdict["drifted"] is False and calm_verdict["compared_with"].endswith("served rows: 200")

    # Traffic that moved: drift on it retrains the model, once.
    _serve(churn(200, seed=3), shift=1.5)
    assert "shop/served_clf (2 batches)" in _observe_tick(defs_dir)
    fired = retrain_tick(defs_dir)
    assert len(fired.run_requests) == 1, _said(fired)
    request = fired.run_requests[0]
    assert _last_drift()["drifted"] is True
    assert "served traffic drifted" in request.tags["slipway/retrain_reason"]
    assert request.tags["slipway/retrain_trigger"] == "drift"
    assert launch(defs_dir, request).success
    after = retrain_tick(defs_dir)
    assert after.run_requests == [], _said(after)  # trained since that traffic: waits for new traffic
    with stack_instance() as instance:
        key = dg.AssetKey(["shop", "clf"])
        assert len(instance.fetch_materializations(key, limit=10).records) == 2


def test_a_shadow_scores_live_requests_and_the_comparison_is_in_mlflow(home, defs_dir, write_pipeline):
    from mlflow import MlflowClient

    from assets.serve.shadow import ShadowComparison

    path = write_pipeline("shop", SHOP, {"data/orders.csv": churn(400, seed=1)})
    assert run(defs_dir=defs_dir).ok
    path.write_text(path.read_text().replace("max_depth: 3", "max_depth: 1"))
    assert run(defs_dir=defs_dir).ok  # v2 takes champion (must_beat: null): v1 is made the shadow
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    client.set_registered_model_alias("shop.clf", "challenger", "1")

    resources = build_resources(load_stack(None).stack)
    shadow = ShadowComparison(resources["experiment_tracker"], "shop.clf")
    traffic = TrafficLog(resources["io_manager"], "shop.clf", shadow=shadow)
    router = Router("shop.clf", Routes("champion", shadow="challenger"), traffic=traffic)
    Follower(router, resources["model_registry"]).refresh()
    rows = churn(120, seed=9)[FEATURES].astype(float)

    async def go():
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for start in range(0, len(rows), 10):
                part = rows.iloc[start : start + 10]
                body = {"dataframe_split": {"columns": FEATURES, "data": part.values.tolist()}}
                answer = await http.post("/invocations", json=body)
                assert answer.status_code == 200 and answer.headers["x-slipway-model-version"] == "2"
            await asyncio.sleep(0.2)  # the shadows run after the answers

    asyncio.run(go())
    traffic.flush()
    shadow.close()
    agreement = shadow.pairs[("2", "1")]
    assert agreement.rows == 120 and 0 <= agreement.agreed <= 120
    (found,) = client.search_runs(
        [client.get_experiment_by_name("shop").experiment_id], "attributes.run_name = 'shadow-clf-v2-vs-v1'"
    )
    assert found.data.metrics["shadow_rows"] == 120
    assert found.data.metrics["agreement"] == pytest.approx(agreement.agreed / 120)
    assert found.data.tags["slipway.shadow.shadow_version"] == "1" and found.info.status == "FINISHED"
    # Both halves are served traffic too, paired by request.
    store = resources["io_manager"]
    table = store.read_batches(("shop", "served_clf"), store.batches(("shop", "served_clf")))
    assert (table["_role"] == "shadow").sum() == 120 and (table["_role"] == "answered").sum() == 120
    assert set(table.loc[table["_role"] == "shadow", "_request"]) == set(
        table.loc[table["_role"] == "answered", "_request"]
    )
