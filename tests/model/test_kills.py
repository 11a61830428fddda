"""A `slipway run` killed (SIGKILL) at any moment of a training leaves nothing half-done (issue 7).

Each test trains a champion, changes the model, kills the retraining at one moment, then runs
`slipway run` again and reads MLflow and Dagster back: no MLflow run is left RUNNING, no Dagster
run STARTED, every model version is either known to Dagster or tagged abandoned, and every alias
points at a version Dagster knows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow_server import MlflowServer, free_port
from stored import stored_anywhere

from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KILLPOINTS = REPO / "tests" / "killpoints.py"
NAME = "shop.clf"
SECRET = "s3cret-Pa55"

PIPELINE = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/*.csv}
  models:
    clf:
      dataset: orders
      target: returned
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: DEPTH, random_state: 0}
      split: {test_size: 0.25, seed: 0}
      metrics: [accuracy]
"""


def _orders(rows: int = 600, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    returned = ((x1 + 0.8 * x2 * x2 + rng.normal(0, 0.3, rows)) > 0.6).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "returned": returned})


def _killed_run(point: str, defs_dir: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLIPWAY_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(KILLPOINTS), point, "--defs", str(defs_dir), "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, f"not killed at {point}:\n{done.stdout}\n{done.stderr}"
    return done


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home / "dagster"))


def _known_to_dagster(home: Path) -> set[str]:
    """The model versions Dagster recorded a materialization of (``name@version`` data versions)."""
    with _instance(home) as instance:
        records = instance.fetch_materializations(dg.AssetKey(["shop", "clf"]), limit=100).records
        return {r.asset_materialization.tags["dagster/data_version"].split("@")[1] for r in records}


def _state(home: Path) -> dict:
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    experiment = client.get_experiment_by_name("shop")
    runs = client.search_runs([experiment.experiment_id])
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{NAME}'")}
    with _instance(home) as instance:
        unfinished = [
            r.run_id
            for r in instance.get_runs()
            if r.status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
        ]
    return {
        "running": [r.info.run_id for r in runs if r.info.status == "RUNNING"],
        "versions": versions,
        "aliases": {a: str(v) for a, v in client.get_registered_model(NAME).aliases.items()},
        "dagster_unfinished": unfinished,
    }


def _assert_nothing_half_done(home: Path) -> dict:
    state = _state(home)
    known = _known_to_dagster(home)
    assert state["running"] == [], "an MLflow run is left RUNNING"
    assert state["dagster_unfinished"] == [], "a Dagster run is left unfinished"
    for number, version in state["versions"].items():
        assert number in known or "slipway.abandoned" in version.tags, f"v{number} is neither delivered nor abandoned"
        assert "slipway.promotion" in version.tags, f"v{number} has no recorded decision"
    for alias, number in state["aliases"].items():
        assert number in known, f"{alias} points at v{number}, which Dagster never recorded"
    return state


@pytest.fixture
def retrain(home, defs_dir, write_pipeline):
    """A champion trained, then the model changed so the next run retrains it."""
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _orders()})
    first = run(defs_dir=defs_dir)
    assert first.ok and _state(home)["aliases"] == {"champion": "1"}
    write_pipeline("shop", PIPELINE.replace("DEPTH", "4"))


@pytest.mark.parametrize("point", ["run-started", "registered", "alias-moved"])
def test_a_run_killed_before_dagster_recorded_the_model_leaves_no_debris(point, home, defs_dir, retrain):
    _killed_run(point, defs_dir, home)
    killed = _state(home)
    if point != "run-started":
        assert "2" in killed["versions"]  # the killed run got this far
        assert "slipway.promotion" in killed["versions"]["2"].tags, "registered before its decision was recorded"
    if point == "alias-moved":
        assert "2" in killed["aliases"].values()

    again = run(defs_dir=defs_dir)
    assert again.ok, again.outcomes
    assert next(o for o in again.outcomes if o.key == "shop/clf").status == "built"
    state = _assert_nothing_half_done(home)
    if point != "run-started":
        abandoned = state["versions"]["2"].tags["slipway.abandoned"]
        assert "ended (FAILURE) before Dagster recorded it" in abandoned, abandoned
        assert "2" not in state["aliases"].values()
        # The champion was v1 again when v3 was decided: v3 was compared with v1, not v2.
        assert state["versions"]["3"].tags["slipway.compared_with"] == "1"
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    statuses = sorted(r.info.status for r in client.search_runs([client.get_experiment_by_name("shop").experiment_id]))
    assert statuses == ["FAILED", "FINISHED", "FINISHED"], statuses


def test_a_run_killed_after_dagster_recorded_the_model_is_finished_not_retrained(home, defs_dir, retrain):
    _killed_run("delivered", defs_dir, home)
    assert _state(home)["running"], "killed before the MLflow run was closed"
    assert "2" in _known_to_dagster(home)

    again = run(defs_dir=defs_dir)
    assert next(o for o in again.outcomes if o.key == "shop/clf").status == "reused"
    state = _assert_nothing_half_done(home)
    assert sorted(state["versions"]) == ["1", "2"]
    assert "slipway.abandoned" not in state["versions"]["2"].tags


def _latest_observation(instance, key: str) -> str:
    """The description of the asset's latest observation (what the UI's Events tab shows first)."""
    records = instance.fetch_observations(dg.AssetKey.from_user_string(key), limit=1).records
    return records[0].event_log_entry.asset_observation.description if records else ""


@pytest.fixture
def server(tmp_path, monkeypatch):
    started = MlflowServer(tmp_path / "server")
    started.start()
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI", started.url)
    yield started
    started.stop()


def test_a_server_that_dies_after_registration_is_retried_briefly_and_settled_later(
    home, defs_dir, write_pipeline, server, monkeypatch
):
    """The MLflow server killed right after a version was registered: the step says it retries,
    gives up within the stated total, and the next run (server back) abandons that version."""
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _orders()})
    env = {
        **os.environ,
        "SLIPWAY_HOME": str(home),
        "PYTHONPATH": str(REPO),
        "KILL_SERVER_PGID": str(server.process.pid),
    }
    done = subprocess.run(
        [sys.executable, str(KILLPOINTS), "server-down-after-registered", "--defs", str(defs_dir), "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "retrying, attempt 2 of 4 (gives up within" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr and stored_anywhere(home, SECRET) == []
    assert "shop/clf" in done.stdout and "failed" in done.stdout

    with _instance(home) as instance:  # kept for the next run: the stores were down
        assert instance.run_storage.get_cursor_values({"slipway/unsettled"}) == {"slipway/unsettled": '["shop/clf"]'}
        assert "left unsettled" in _latest_observation(instance, "shop/clf")  # and the UI shows it
    server.start()  # same port and database: the server is back
    client = MlflowClient(tracking_uri=server.url)
    (left,) = client.search_model_versions(f"name = '{NAME}'")
    assert "slipway.abandoned" not in left.tags and client.get_run(left.run_id).info.status == "RUNNING"

    again = run(defs_dir=defs_dir)
    assert again.ok, again.outcomes
    versions = {str(v.version): v for v in client.search_model_versions(f"name = '{NAME}'")}
    assert "ended (FAILURE) before Dagster recorded it" in versions["1"].tags["slipway.abandoned"]
    assert client.get_run(versions["1"].run_id).info.status == "FAILED"
    with _instance(home) as instance:
        assert instance.run_storage.get_cursor_values({"slipway/unsettled"}) == {"slipway/unsettled": "[]"}
        assert "settled" in _latest_observation(instance, "shop/clf")
        assert "left unsettled" not in _latest_observation(instance, "shop/clf")
    assert {a: str(v) for a, v in client.get_registered_model(NAME).aliases.items()} == {"champion": "2"}
    assert stored_anywhere(home, SECRET) == []


def test_an_unreachable_tracking_server_fails_the_model_after_bounded_retries(
    home, defs_dir, write_pipeline, monkeypatch
):
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _orders()})
    env = {
        **os.environ,
        "SLIPWAY_HOME": str(home),
        "SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI": f"http://user:hunter2@127.0.0.1:{free_port()}",
    }
    slipway = Path(sys.executable).parent / "slipway"
    done = subprocess.run(
        [str(slipway), "--defs", str(defs_dir), "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert [line.split("retrying, ")[1].split(" (")[0] for line in output.splitlines() if "retrying, " in line] == [
        "attempt 2 of 4",
        "attempt 3 of 4",
        "attempt 4 of 4",
    ], output
    assert "Connection refused" in output and "hunter2" not in output and "Traceback" not in output
    assert "shop/orders" in done.stdout


def test_a_model_whose_output_cannot_be_stored_is_settled_when_its_run_ends(home, defs_dir, retrain, monkeypatch):
    """The version is registered and champion, then Dagster fails to store the output: Dagster has
    no record of it, so `slipway run` abandons it and gives the champion back when the run ends."""
    from resources.artifacts import LocalArtifactStore, ModelRef

    store = LocalArtifactStore.handle_output

    def failing(self, context, obj):
        if isinstance(obj, ModelRef):
            raise OSError("injected: the artifact store refused the write")
        return store(self, context, obj)

    with monkeypatch.context() as patch:  # (monkeypatch.undo() would also undo SLIPWAY_HOME)
        patch.setattr(LocalArtifactStore, "handle_output", failing)
        failed = run(defs_dir=defs_dir)
    assert next(o for o in failed.outcomes if o.key == "shop/clf").status == "failed"
    settled = _assert_nothing_half_done(home)
    assert "before Dagster recorded it" in settled["versions"]["2"].tags["slipway.abandoned"]
    assert settled["aliases"] == {"champion": "1"}  # promoted, not delivered, given back

    again = run(defs_dir=defs_dir)
    assert next(o for o in again.outcomes if o.key == "shop/clf").status == "built"
    state = _assert_nothing_half_done(home)
    assert "before Dagster recorded it" in state["versions"]["2"].tags["slipway.abandoned"]
    assert state["versions"]["3"].tags["slipway.compared_with"] == "1"


def test_a_recorded_version_abandoned_later_is_rebuilt(home, defs_dir, write_pipeline):
    """If a version Dagster recorded is ever abandoned (a UI force-termination racing its run), the
    model is out of date: the record must not keep pointing at a version MLflow disowned."""
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _orders()})
    run(defs_dir=defs_dir)
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    client.set_model_version_tag(NAME, "1", "slipway.abandoned", "test: disowned")
    again = run(defs_dir=defs_dir)
    outcome = next(o for o in again.outcomes if o.key == "shop/clf")
    assert outcome.status == "built" and "shop.clf v1 was abandoned (test: disowned)" in outcome.reason


def test_ctrl_c_after_the_alias_moved_gives_the_alias_back_at_once(home, defs_dir, retrain):
    """Ctrl-C is not a kill: the step is interrupted before Dagster recorded the version, and it
    settles its own work on the way out (no next run needed)."""
    env = {**os.environ, "SLIPWAY_HOME": str(home), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(KILLPOINTS), "interrupt-after-alias-moved", "--defs", str(defs_dir), "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (1, 130), done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    state = _assert_nothing_half_done(home)
    assert "failed before Dagster recorded it (interrupted)" in state["versions"]["2"].tags["slipway.abandoned"]
    assert state["aliases"] == {"champion": "1"}


def test_a_forced_training_that_fails_after_promotion_is_settled_by_the_same_run(
    home, defs_dir, write_pipeline, monkeypatch
):
    """The model is up to date, so no next training would settle it: `slipway run` settles what its
    own run left as soon as the run ends."""
    from resources.artifacts import LocalArtifactStore, ModelRef

    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _orders()})
    run(defs_dir=defs_dir)
    store = LocalArtifactStore.handle_output

    def failing(self, context, obj):
        if isinstance(obj, ModelRef):
            raise OSError("injected: the artifact store refused the write")
        return store(self, context, obj)

    with monkeypatch.context() as patch:
        patch.setattr(LocalArtifactStore, "handle_output", failing)
        forced = run(defs_dir=defs_dir, force=True)
    assert next(o for o in forced.outcomes if o.key == "shop/clf").status == "failed"
    state = _assert_nothing_half_done(home)
    assert "slipway.abandoned" in state["versions"]["2"].tags and state["aliases"] == {"champion": "1"}
    assert next(o for o in run(defs_dir=defs_dir).outcomes if o.key == "shop/clf").status == "reused"
