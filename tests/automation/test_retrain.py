"""Retraining by policy, end to end: each trigger through the retrain sensor's evaluation and real runs.

A pipeline lands customer batches in ``data/batch_*.csv``; ``clf`` declares a retrain policy,
``plain`` none. New batches are observed and the dataset rebuilt as the automation sensor
does; the retrain sensor's tick is evaluated as the daemon would (its clock given), its run
requests launched with their tags and run keys, and the results read from MLflow.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from views import automation_requests, launch, retrain_tick, stack_instance, ui_materialize, ui_observe

from assets.automation.sensors import RETRAIN_SENSOR, RUN_FAILURE_SENSOR
from assets.data.generators import churn
from assets.spec.tags import REASON_TAG, TRIGGER_TAG
from definitions.cli.runner import run
from definitions.definitions import build_definitions
from resources.mlflow_registry import MlflowModelRegistry
from stacks import load_stack

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

PIPELINE = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    customers:
      source: {{path: data/batch_*.csv}}
      expectations:
        - {{expect: column_values_to_be_between, column: tenure, min_value: 0, max_value: 72}}
  models:
    clf:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges, support_calls, contract_months]
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {{n_estimators: 10, max_depth: 4, random_state: 0, n_jobs: 1}}
      split: {{test_size: 0.25, by: customer_id}}
      metrics: [roc_auc]
      retrain: {retrain}
    plain:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges]
      estimator: sklearn.linear_model.LogisticRegression
      split: {{test_size: 0.25, by: customer_id}}
      metrics: [roc_auc]
"""


@pytest.fixture
def shop(home, defs_dir, write_pipeline):
    def make(retrain: str) -> None:
        write_pipeline("shop", PIPELINE.format(retrain=retrain), {"data/batch_000.csv": churn(600, seed=7)})
        report = run(defs_dir=defs_dir)
        assert report.ok, report

    return make


def land(defs_dir, number: int, rows: int = 600, drift: float = 0.0, **changes) -> None:
    """A new batch in the landing folder, observed and loaded as the automation sensor would."""
    frame = churn(rows, seed=20 + number, drift=drift, id_offset=10_000 * number).assign(**changes)
    frame.to_csv(defs_dir / "shop" / "data" / f"batch_{number:03d}.csv", index=False)
    ui_observe(defs_dir)
    assert automation_requests(defs_dir) == {"shop/customers"}
    ui_materialize(defs_dir, "shop/customers")
    # Neither model is requested by the automation sensor for new data alone.
    assert automation_requests(defs_dir) == set()


def requests(result) -> list[dg.RunRequest]:
    return list(result.run_requests or [])


def said(result) -> str:
    return result.skip_message or ""


def versions(name: str = "shop.clf") -> list[dict[str, str]]:
    stack = load_stack().stack
    registry = MlflowModelRegistry(tracking_uri=stack.experiment_tracker.tracking_uri)
    client = registry._client
    found = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    found = [client.get_model_version(name, v.version) for v in found]  # a search leaves aliases out
    return [dict(v.tags, version=str(v.version), aliases=",".join(v.aliases)) for v in found]


def observations(defs_dir) -> list[dict]:
    with stack_instance() as i:
        records = i.fetch_observations(dg.AssetKey(["shop", "clf"]), limit=100).records
    return [
        {k: getattr(v, "value", v) for k, v in r.event_log_entry.asset_observation.metadata.items()} for r in records
    ]


def test_the_retrain_and_failure_sensors_are_on_by_default(home, defs_dir, shop):
    shop("{on_new_data: true}")
    defs = build_definitions(defs_dir)
    for name in (RETRAIN_SENSOR, RUN_FAILURE_SENSOR):
        assert defs.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_new_data_retrains_once_per_data_version_and_says_why(home, defs_dir, shop):
    shop("{on_new_data: true}")
    assert "shop/clf: idle: trained on the newest data" in said(retrain_tick(defs_dir))
    land(defs_dir, 1)
    first, again = retrain_tick(defs_dir), retrain_tick(defs_dir)
    (request,) = requests(first)
    assert requests(again)[0].run_key == request.run_key  # the daemon launches a run key once
    assert request.asset_selection == [dg.AssetKey(["shop", "clf"])]
    assert request.tags[TRIGGER_TAG] == "new_data"
    assert request.tags[REASON_TAG] == "new_data: shop/customers has new data"
    assert launch(defs_dir, request).success
    # Launched: neither a later tick nor the same run key asks again.
    assert "shop/clf: idle: trained on the newest data" in said(retrain_tick(defs_dir))
    latest = versions()[-1]
    assert latest["version"] == "2" and latest["slipway.retrain_trigger"] == "new_data"
    assert latest["slipway.retrain_reason"] == "new_data: shop/customers has new data"
    assert "slipway.promotion" in latest
    # The model without a retrain block never retrained by itself.
    assert [v["version"] for v in versions("shop.plain")] == ["1"]
    assert "shop/plain" not in said(retrain_tick(defs_dir))


def test_a_run_key_already_launched_is_not_requested_again(home, defs_dir, shop):
    shop("{on_new_data: true}")
    land(defs_dir, 1)
    (request,) = requests(retrain_tick(defs_dir))
    # The retraining failed (its run exists with the key): the same data does not retrain again by itself.
    defs = build_definitions(defs_dir)
    with stack_instance() as i:
        run_record = i.create_run_for_job(
            defs.resolve_implicit_global_asset_job_def(), tags={"dagster/run_key": request.run_key}
        )
        i.report_run_failed(run_record)
    assert "a retraining for this data failed (run " in said(retrain_tick(defs_dir))


def test_cooldown_holds_a_trigger_back_and_says_until_when(home, defs_dir, shop):
    shop("{on_new_data: true, cooldown: 6h}")
    land(defs_dir, 1)
    now = time.time()
    waiting = said(retrain_tick(defs_dir, now))
    assert (
        "shop/clf: wait: new_data (shop/customers has new data) waits for the cooldown (6h after the training at"
        in waiting
    )
    assert not requests(retrain_tick(defs_dir, now + 3 * 3600))
    (request,) = requests(retrain_tick(defs_dir, now + 6 * 3600 + 60))
    assert request.tags[TRIGGER_TAG] == "new_data"


def test_max_per_day_counts_the_trainings_of_the_last_24_hours(home, defs_dir, shop):
    shop("{on_new_data: true, max_per_day: 2}")
    land(defs_dir, 1)
    (request,) = requests(retrain_tick(defs_dir))
    assert launch(defs_dir, request).success
    land(defs_dir, 2)
    now = time.time()
    assert "waits for max_per_day (2 trainings in the last 24 hours, at most 2) until" in said(
        retrain_tick(defs_dir, now)
    )
    (request,) = requests(retrain_tick(defs_dir, now + 24 * 3600 + 60))
    assert launch(defs_dir, request).success
    assert [v["version"] for v in versions()] == ["1", "2", "3"]


def test_a_schedule_retrains_at_the_first_tick_after_new_data(home, defs_dir, shop):
    shop('{schedule: "0 3 * * *"}')
    land(defs_dir, 1)
    now = datetime.now(UTC)
    next_tick = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if next_tick <= now:
        next_tick += timedelta(days=1)
    before = said(retrain_tick(defs_dir, now.timestamp()))
    assert "shop/clf: idle: shop/customers has new data; no trigger: the next tick of '0 3 * * *'" in before
    (request,) = requests(retrain_tick(defs_dir, (next_tick + timedelta(minutes=1)).timestamp()))
    assert request.tags[TRIGGER_TAG] == "schedule"
    assert f"ticked at {next_tick:%Y-%m-%d} 03:00:00 UTC" in request.tags[REASON_TAG]
    assert launch(defs_dir, request).success
    assert versions()[-1]["slipway.retrain_trigger"] == "schedule"


def test_drift_is_evaluated_once_per_data_version_and_retrains_when_above_threshold(home, defs_dir, shop):
    shop("{on_drift: {method: psi, threshold: 0.2, features: [tenure, monthly_charges, support_calls]}}")
    # A batch like the first: evaluated, recorded, and nothing retrains.
    land(defs_dir, 1)
    calm = retrain_tick(defs_dir)
    assert not requests(calm) and "drift below threshold (psi 0.0" in said(calm)
    (evaluation,) = observations(defs_dir)
    assert evaluation["drifted"] is False and evaluation["drift_score"] < 0.2
    assert evaluation["drift_report"].startswith("http://127.0.0.1:5000/#/experiments/")
    assert evaluation["drift_report"].endswith("/artifacts/drift/drift_report.html?workflowType=machine_learning")
    assert {r["feature"] for r in _rows(evaluation["features"])} == {"tenure", "monthly_charges", "support_calls"}
    retrain_tick(defs_dir)
    assert len(observations(defs_dir)) == 1  # the verdict is kept: no second load of the data
    # A drifted batch as large as everything before it.
    land(defs_dir, 2, rows=1200, drift=1.0)
    (request,) = requests(retrain_tick(defs_dir))
    assert request.tags[TRIGGER_TAG] == "drift"
    assert "drifted (" in request.tags[REASON_TAG]
    drifted = observations(defs_dir)[0]
    assert drifted["drifted"] is True and drifted["drift_score"] > 0.2
    assert drifted["compared_with"].startswith("shop.clf v1 (champion), trained on ")
    assert launch(defs_dir, request).success
    latest = versions()[-1]
    assert latest["version"] == "2" and latest["slipway.retrain_trigger"] == "drift"
    # Promoted only if it beat the champion on rows neither trained on; the reason says which.
    assert latest["aliases"] in ("champion", "challenger")
    assert latest["slipway.promotion"]
    # The report is in MLflow, as an HTML page with a plot per feature.
    report = _drift_report(drifted["drift_report"])
    assert report.startswith("<!doctype html>") and report.count("<svg") >= 3 and "Drift detected" in report


def test_a_corrupt_batch_fails_expectations_and_never_retrains(home, defs_dir, shop):
    shop("{on_new_data: true}")
    frame = churn(100, seed=99, id_offset=50_000).assign(tenure=-5)
    frame.to_csv(defs_dir / "shop" / "data" / "batch_001.csv", index=False)
    ui_observe(defs_dir)
    result = ui_materialize(defs_dir, "shop/customers")
    assert not result.success
    assert not requests(retrain_tick(defs_dir))
    assert [v["aliases"] for v in versions()] == ["champion"]
    # Alerted once, in the run's log (the stack's alerter is `log`); not again as a failed run.
    (line,) = _alert_lines(result)
    assert line.startswith("alert check_failed: shop/customers: data refused: pipeline shop, dataset customers: ")
    assert "blocking expectations failed" in line and _run_failure_alerts(defs_dir, result) == []


def _rows(table) -> list[dict]:
    return [dict(r.data) for r in table.records]


def _drift_report(link: str) -> str:
    import mlflow

    run_id = link.split("/runs/")[1].split("/")[0]
    stack = load_stack().stack
    client = mlflow.MlflowClient(tracking_uri=stack.experiment_tracker.tracking_uri)
    path = client.download_artifacts(run_id, "drift/drift_report.html")
    return open(path).read()


def test_a_schema_changed_batch_is_refused_held_alerted_and_never_retrains(home, defs_dir, shop):
    shop("{on_new_data: true}")
    churn(100, seed=98, id_offset=60_000).drop(columns="tenure").to_csv(
        defs_dir / "shop" / "data" / "batch_001.csv", index=False
    )
    ui_observe(defs_dir)
    result = ui_materialize(defs_dir, "shop/customers")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    from assets.automation.run_failures import root_message

    message = root_message(failure.event_specific_data.error)
    assert "data/batch_001.csv has columns that differ from data/batch_000.csv's (missing tenure)" in message
    # The same files fail the same way: the automation sensor does not launch it again and again.
    assert automation_requests(defs_dir) == set()
    assert not requests(retrain_tick(defs_dir))
    assert [v["aliases"] for v in versions()] == ["champion"]
    # Alerted once, by the dataset that refused it (the run failure sensor leaves refused data to it).
    assert _alert_lines(result) == [
        "alert check_failed: shop/customers: data refused: pipeline shop, dataset customers: data/batch_001.csv "
        "has columns that differ from data/batch_000.csv's (missing tenure); the batch is refused and not stored"
        " (Dagster asset: http://127.0.0.1:3000/assets/shop/customers)"
    ]
    assert _run_failure_alerts(defs_dir, result) == []


def test_an_unreadable_batch_is_refused_held_and_alerted_once_without_its_bytes(home, defs_dir, shop):
    shop("{on_new_data: true}")
    (defs_dir / "shop" / "data" / "batch_001.csv").write_bytes(bytes(range(256)) * 12)
    ui_observe(defs_dir)
    result = ui_materialize(defs_dir, "shop/customers")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error, chain = failure.event_specific_data.error, []
    while error is not None:
        chain.append(error.message)
        error = error.cause or error.context
    assert all(m.isprintable() or m.replace("\n", "").isprintable() for m in chain), chain
    assert "batch_001.csv: cannot read as csv: not text (binary data?)" in chain[-1]
    # Held: the same bytes fail the same way, so the automation sensor does not launch it every tick.
    assert automation_requests(defs_dir) == set()
    assert len(_alert_lines(result)) == 1 and _run_failure_alerts(defs_dir, result) == []
    assert [v["aliases"] for v in versions()] == ["champion"]


def _alert_lines(result) -> list[str]:
    with stack_instance() as i:
        return [e.user_message for e in i.all_logs(result.run_id) if (e.user_message or "").startswith("alert ")]


def _run_failure_alerts(defs_dir, result) -> list:
    from resources.alerts import Alerter

    sent = []

    class Recording(Alerter):
        def _send(self, alert, log):
            sent.append(alert)
            return True

    defs = build_definitions(defs_dir)
    sensor = defs.get_sensor_def(RUN_FAILURE_SENSOR)
    with stack_instance() as i:
        run_record = i.get_run_by_id(result.run_id)
        (event,) = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"]
        context = dg.build_run_status_sensor_context(
            sensor_name=RUN_FAILURE_SENSOR,
            dagster_event=event,
            dagster_instance=i,
            dagster_run=run_record,
            resources={"alerter": Recording()},
        ).for_run_failure()
        sensor(context)
    return sent


def test_alerts_reach_a_webhook_and_a_dead_webhook_fails_nothing(home, defs_dir, shop, monkeypatch):
    from webhook import Hook

    server = Hook()
    try:
        monkeypatch.setenv("SLIPWAY_ALERTER__TYPE", "webhook")
        monkeypatch.setenv("SLIPWAY_ALERTER__BACKOFF_SECONDS", "0.01")
        monkeypatch.setenv("SLIPWAY_ALERT_WEBHOOK", server.url)
        shop("{on_new_data: true}")  # the first training of each model takes champion
        kinds = sorted((b["slipway"]["kind"], b["slipway"]["asset"]) for b in server.bodies)
        assert kinds == [("promotion", "shop/clf"), ("promotion", "shop/plain")]
        assert server.bodies[0]["text"].startswith(":trophy: *shop.")
    finally:
        server.close()
    # The webhook is gone: the retraining is retried-and-logged, never failed by it.
    land(defs_dir, 1)
    (request,) = requests(retrain_tick(defs_dir))
    result = launch(defs_dir, request)
    assert result.success
    with stack_instance() as i:
        lines = [e.user_message for e in i.all_logs(result.run_id) if "webhook alert" in (e.user_message or "")]
    assert lines and lines[-1].endswith("given up (the pipeline goes on)")
    assert not any(server.url in line for line in lines)


GRAPH = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    customers:
      source: {{path: data/batch_*.csv}}
    holdout:
      source: {{path: data/holdout.csv}}
    feats:
      inputs: [customers]
      sql: {sql}
  models:
    nopolicy:
      dataset: feats
      target: churned
      features: [tenure, monthly_charges]
      estimator: sklearn.linear_model.LogisticRegression
      split: {{test_size: 0.25, by: customer_id}}
      metrics: [roc_auc]
    driftpol:
      dataset: feats
      evaluate_on: holdout
      target: churned
      estimator: sklearn.linear_model.LogisticRegression
      metrics: [roc_auc]
      retrain: {{on_drift: {{threshold: 0.2}}}}
"""


@pytest.fixture
def graph(home, defs_dir, write_pipeline):
    def make(sql: str = "select * from customers") -> None:
        files = {"data/batch_000.csv": churn(600, seed=7), "data/holdout.csv": churn(300, seed=5, id_offset=900_000)}
        write_pipeline("shop", GRAPH.format(sql=sql), files)

    make()
    assert run(defs_dir=defs_dir).ok
    return make


def test_a_git_change_upstream_reaches_every_model_by_automation(home, defs_dir, graph):
    graph("select * from customers where tenure >= 10")
    assert automation_requests(defs_dir) == {"shop/feats"}
    assert ui_materialize(defs_dir, "shop/feats").success
    # Its data changed because its definition did: both models follow (as `slipway plan` said),
    # whatever their retrain policy.
    assert automation_requests(defs_dir) == {"shop/nopolicy", "shop/driftpol"}
    assert "shop/driftpol: idle: shop/feats changed in git; the automation sensor rebuilds it" in said(
        retrain_tick(defs_dir)
    )


def test_default_drift_features_leave_out_the_split_id_and_the_target(home, defs_dir, write_pipeline):
    text = PIPELINE.format(retrain="{on_drift: {threshold: 0.2}}").replace(
        "      features: [tenure, monthly_charges, support_calls, contract_months]\n", "", 1
    )
    write_pipeline("shop", text, {"data/batch_000.csv": churn(600, seed=7)})
    assert run(defs_dir=defs_dir).ok
    land(defs_dir, 1)  # the same distribution, new customer ids
    calm = retrain_tick(defs_dir)
    assert not requests(calm), said(calm)
    features = {r["feature"] for r in _rows(observations(defs_dir)[0]["features"])}
    assert features == {"tenure", "monthly_charges", "support_calls", "contract_months"}


def test_drift_does_not_retrain_again_when_only_the_evaluation_set_changes(home, defs_dir, graph):
    (defs_dir / "shop" / "data" / "batch_001.csv").write_text(
        churn(1200, seed=30, drift=1.0, id_offset=10_000).to_csv(index=False)
    )
    ui_observe(defs_dir)
    ui_materialize(defs_dir, "shop/customers")
    ui_materialize(defs_dir, "shop/feats")
    (request,) = requests(retrain_tick(defs_dir))
    assert request.tags[TRIGGER_TAG] == "drift" and launch(defs_dir, request).success
    # Only the evaluation set changes: the drifted training data was trained on already.
    churn(400, seed=6, id_offset=900_000).to_csv(defs_dir / "shop" / "data" / "holdout.csv", index=False)
    ui_observe(defs_dir)
    ui_materialize(defs_dir, "shop/holdout")
    assert not requests(retrain_tick(defs_dir))


CHECKED = '''
import os

import dagster as dg


@dg.asset(
    key=["hand", "customers"],
    group_name="hand",
    check_specs=[dg.AssetCheckSpec("complete", asset=["hand", "customers"], blocking=True)],
)
def customers():
    """A hand-written input with a blocking check that fails after the data is stored."""
    from assets.data.generators import churn

    rows = int(os.environ.get("HAND_ROWS", "300"))
    yield dg.Output(churn(rows, seed=rows), data_version=dg.DataVersion(str(rows)))
    yield dg.AssetCheckResult(check_name="complete", passed=rows >= 300)
'''


def test_an_input_failing_its_blocking_check_holds_the_retraining_back(home, defs_dir, write_pipeline, monkeypatch):
    (defs_dir / "hand").mkdir()
    (defs_dir / "hand" / "assets.py").write_text(CHECKED)
    text = PIPELINE.format(retrain="{on_new_data: true}").replace("dataset: customers", "dataset: hand/customers")
    write_pipeline("shop", text, {"data/batch_000.csv": churn(600, seed=7)})
    assert run(defs_dir=defs_dir).ok
    monkeypatch.setenv("HAND_ROWS", "200")  # new data, and its blocking check fails
    ui_materialize(defs_dir, "hand/customers")
    held = retrain_tick(defs_dir)
    assert not requests(held)
    assert (
        "shop/clf: wait: hand/customers has new data; waits: hand/customers failed its blocking checks (complete)"
        in said(held)
    )
    monkeypatch.setenv("HAND_ROWS", "400")
    assert ui_materialize(defs_dir, "hand/customers").success
    (request,) = requests(retrain_tick(defs_dir))
    assert request.tags[TRIGGER_TAG] == "new_data"
