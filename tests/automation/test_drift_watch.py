"""The drift evaluation of the retrain sensor, with stand-in stores: what is kept, recorded and alerted."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import dagster as dg
import pytest

from assets.automation import drift_watch
from assets.automation.retrain import STATE_PREFIX
from assets.data.generators import churn
from assets.spec.policy import Policy
from assets.spec.schedules import Retrain
from assets.spec.versions import frame_version
from resources.drift import StatisticalDriftDetector
from resources.errors import ResourceError

KEY = dg.AssetKey(["shop", "clf"])
REPORT_URL = "http://127.0.0.1:5000/#/experiments/1/runs/abc/artifacts/drift/drift_report.html"
REFERENCE = churn(2000, seed=1)
DRIFTED = churn(2000, seed=2, drift=1.0)
POLICY = Policy(
    "shop/clf",
    "shop.clf",
    Retrain.model_validate({"on_drift": {"threshold": 0.2}}),
    "shop/customers",
    "churned",
    ("tenure", "monthly_charges", "support_calls"),
    "champion",
)


class Registry:
    def __init__(self) -> None:
        self.down = False

    def aliases(self, name):
        if self.down:
            raise ResourceError("model registry (mlflow at http://user:***@mlflow:5000): cannot read aliases: refused")
        return {"champion": "1"}

    def version_tags(self, name, version):
        return {"slipway.upstream.shop/customers": frame_version(REFERENCE)}


class Store:
    frames = {"ref-run": REFERENCE, "new-run": DRIFTED}

    def read_version(self, key, run_id):
        return self.frames[run_id]


class Tracker:
    def __init__(self) -> None:
        self.files = {}

    def start_run(self, experiment, name, tags, start_time_ms=None):
        return SimpleNamespace(run_id="abc", experiment_id="1", name=name, tags=tags)

    def log(self, run, params, metrics, tags):
        self.metrics = metrics

    def log_file(self, run, path, data):
        self.files[path] = data

    def end_run(self, run, ok):
        pass

    def artifact_url(self, run, path):
        return f"http://127.0.0.1:5000/#/experiments/1/runs/abc/artifacts/{path}"


class Alerter:
    def __init__(self) -> None:
        self.sent = []

    def send(self, alert, log=None):
        self.sent.append(alert)
        return True


@pytest.fixture
def watch(monkeypatch):
    versions = {frame_version(REFERENCE): ["ref-run"], frame_version(DRIFTED): ["new-run"]}
    monkeypatch.setattr(drift_watch, "materialized_with", lambda instance, key, version: versions.get(version, []))
    resources = SimpleNamespace(
        io_manager=Store(),
        model_registry=Registry(),
        experiment_tracker=Tracker(),
        drift_detector=StatisticalDriftDetector(),
        alerter=Alerter(),
    )
    instance = dg.DagsterInstance.ephemeral()
    return drift_watch.DriftWatch(instance, resources, logging.getLogger("test.drift")), resources, instance


def recorded(instance) -> list:
    return [r.event_log_entry.asset_observation for r in instance.fetch_observations(KEY, limit=10).records]


def test_a_drifted_version_is_recorded_reported_alerted_and_kept(watch):
    found, resources, instance = watch
    verdict = found(POLICY, frame_version(DRIFTED))
    events = recorded(instance)
    assert verdict.evaluated and verdict.drifted and verdict.score > 0.2
    (observation,) = events
    assert instance.run_storage.get_cursor_values({STATE_PREFIX + POLICY.asset})  # kept after it was recorded
    assert observation.asset_key == dg.AssetKey(["shop", "clf"])
    assert observation.metadata["drifted"].value is True
    assert observation.metadata["drift_report"].value == REPORT_URL
    page = resources.experiment_tracker.files["drift/drift_report.html"].decode()
    assert "Drift detected" in page and page.count("<svg") >= 3
    assert set(resources.experiment_tracker.metrics) == {
        "drift_score",
        "drift_tenure",
        "drift_monthly_charges",
        "drift_support_calls",
    }
    (alert,) = resources.alerter.sent
    assert alert.kind == "drift" and alert.link == REPORT_URL
    # Kept: the next tick reads the verdict, not the data.
    resources.io_manager.frames = {}
    assert found(POLICY, frame_version(DRIFTED)) == verdict
    assert len(recorded(instance)) == 1


def test_a_store_that_is_down_is_asked_again_next_tick_not_recorded(watch):
    found, resources, instance = watch
    resources.model_registry.down = True
    verdict = found(POLICY, frame_version(DRIFTED))
    assert not verdict.evaluated and recorded(instance) == []
    assert instance.run_storage.get_cursor_values({STATE_PREFIX + POLICY.asset}) == {}
    resources.model_registry.down = False
    verdict = found(POLICY, frame_version(DRIFTED))
    assert verdict.evaluated and verdict.drifted and len(recorded(instance)) == 1


def test_reference_data_no_longer_stored_is_a_verdict_of_its_own_reported_once(watch):
    found, resources, instance = watch
    resources.io_manager.frames = {"new-run": DRIFTED}
    verdict = found(POLICY, frame_version(DRIFTED))
    assert not verdict.evaluated and not verdict.drifted
    assert verdict.summary.startswith("not evaluated: the data champion v1 trained on is no longer stored")
    assert len(recorded(instance)) == 1 and resources.alerter.sent == []
    assert found(POLICY, frame_version(DRIFTED)) == verdict
    assert len(recorded(instance)) == 1


def test_a_schema_changed_batch_without_a_drift_feature_is_not_evaluated(watch, monkeypatch):
    found, resources, instance = watch
    changed = DRIFTED.drop(columns="tenure")
    resources.io_manager.frames = {"ref-run": REFERENCE, "new-run": changed}
    versions = {frame_version(REFERENCE): ["ref-run"], frame_version(changed): ["new-run"]}
    monkeypatch.setattr(drift_watch, "materialized_with", lambda instance, key, version: versions.get(version, []))
    verdict = found(POLICY, frame_version(changed))
    assert verdict.summary == "not evaluated: drift features ['tenure'] are not columns of the current data"
    assert len(recorded(instance)) == 1


def test_an_artifact_store_that_is_down_is_asked_again_next_tick_not_kept(watch):
    found, resources, instance = watch

    class Down:
        def read_version(self, key, run_id):
            raise ResourceError("artifact store (s3 at http://minio:9000): cannot read: connection refused")

    store, resources.io_manager = resources.io_manager, Down()
    found.store = resources.io_manager
    verdict = found(POLICY, frame_version(DRIFTED))
    assert not verdict.evaluated and recorded(instance) == []
    assert instance.run_storage.get_cursor_values({STATE_PREFIX + POLICY.asset}) == {}
    found.store = store
    assert found(POLICY, frame_version(DRIFTED)).drifted
