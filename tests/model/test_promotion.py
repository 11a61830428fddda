"""Promotion that cannot lose an update or be fooled: locks, registry errors, leaked rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import recording_model
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(recording_model.__file__).parent

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
      features: [row_id, x1, x2]
      train: recording_model:fit
      params: {max_depth: DEPTH}
      split: {test_size: 0.25, seed: 0, by: row_id}
      metrics: [accuracy]
"""


def _batch(rows: int, start: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
    returned = ((x1 + 0.8 * x2 * x2 + rng.normal(0, 0.3, rows)) > 0.6).astype(int)
    return pd.DataFrame({"row_id": np.arange(start, start + rows), "x1": x1, "x2": x2, "returned": returned})


@pytest.fixture
def recorded(home, monkeypatch, tmp_path):
    log = tmp_path / "records.jsonl"
    log.touch()
    monkeypatch.setenv("RECORDING_MODEL_LOG", str(log))
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "recording_model"]')
    return log


def _client(home: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")


def _outcome(report, key="shop/clf"):
    return next(o for o in report.outcomes if o.key == key)


def test_after_appending_rows_no_champion_training_row_is_compared(home, defs_dir, write_pipeline, recorded):
    folder = write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _batch(3000, 0, 1)}).parent
    first = run(defs_dir=defs_dir)
    assert _outcome(first).alias == "champion"
    (champion_fit,) = [r for r in recording_model.records(recorded) if r["event"] == "fit"]
    before = len(recording_model.records(recorded))

    _batch(300, 3000, 2).to_csv(folder / "data" / "batch_001.csv", index=False)
    write_pipeline("shop", PIPELINE.replace("DEPTH", "3"))
    second = run(defs_dir=defs_dir)
    assert _outcome(second).status == "built", _outcome(second).detail

    later = recording_model.records(recorded)[before:]
    compared = {i for r in later if r["event"] == "predict" for i in r["ids"]}
    compared_by_champion = {
        i for r in later if r["event"] == "predict" and r["model"] == champion_fit["model"] for i in r["ids"]
    }
    assert compared and compared_by_champion, "the champion was never scored"
    assert compared_by_champion.isdisjoint(champion_fit["ids"])
    # Both versions were scored on the same rows, and new rows take part.
    assert compared_by_champion <= compared
    assert any(i >= 3000 for i in compared_by_champion)
    assert f"on {len(compared_by_champion)} rows neither trained on" in _outcome(second).detail


def test_registry_error_while_reading_the_champion_moves_no_alias(
    home, defs_dir, write_pipeline, recorded, monkeypatch
):
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _batch(1000, 0, 1)})
    assert _outcome(run(defs_dir=defs_dir)).alias == "champion"
    write_pipeline("shop", PIPELINE.replace("DEPTH", "4"))  # a better model: it would be promoted

    # A transient registry failure while the new version is being decided: every read fails.
    def failing(original):
        def read(self, *args, **kwargs):
            raise MlflowException("registry unavailable (injected)", error_code=TEMPORARILY_UNAVAILABLE)

        return read

    for name in ("get_registered_model", "get_model_version_by_alias"):
        monkeypatch.setattr(SqlAlchemyStore, name, failing(getattr(SqlAlchemyStore, name)))
    report = run(defs_dir=defs_dir)
    outcome = _outcome(report)
    monkeypatch.undo()

    assert outcome.status == "failed"
    assert "cannot read the aliases of 'shop.clf'" in outcome.detail
    assert "registry unavailable (injected)" in outcome.detail
    client = _client(home)
    assert client.get_registered_model("shop.clf").aliases == {"champion": 1}
    # Decided before registering: a version that could not be decided is never registered.
    assert [v.version for v in client.search_model_versions("name = 'shop.clf'")] == [1]
    (failed,) = [r for r in client.search_runs(["1"]) if r.info.status != "FINISHED"]
    assert failed.info.status == "FAILED"


def test_a_champion_that_fails_to_load_keeps_its_alias_until_its_files_are_gone(
    home, defs_dir, write_pipeline, recorded
):
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _batch(1000, 0, 1)})
    assert _outcome(run(defs_dir=defs_dir)).alias == "champion"
    client = _client(home)
    champion_run = client.get_model_version("shop.clf", "1").run_id
    model_dir = Path(client.get_run(champion_run).info.artifact_uri.removeprefix("file://")) / "model"
    # Its files are there but do not load (a store that answered badly, say): it is not taken for gone.
    (model_dir / "model.pkl").write_bytes(b"not a model")
    write_pipeline("shop", PIPELINE.replace("DEPTH", "4"))
    outcome = _outcome(run(defs_dir=defs_dir))
    assert (outcome.status, outcome.model_version, outcome.alias) == ("built", "2", "challenger")
    # ... and the served version failing to load is a failed check on the model.
    assert outcome.detail.startswith(
        "check failed: champion_loadable (warning); champion v1 keeps its alias: it cannot be loaded (UnpicklingError"
    ), outcome.detail
    assert client.get_registered_model("shop.clf").aliases == {"champion": 1, "challenger": 2}

    # Its files gone, it can never be served again: a version that passes its gates takes its alias.
    shutil.rmtree(model_dir)
    write_pipeline("shop", PIPELINE.replace("DEPTH", "3"))
    outcome = _outcome(run(defs_dir=defs_dir))
    assert (outcome.status, outcome.model_version, outcome.alias) == ("built", "3", "champion")
    assert outcome.detail == (
        f"gates passed; champion v1 cannot be loaded (the files of shop.clf v1 are gone ({model_dir})): "
        "it gives up its alias"
    )
    assert client.get_registered_model("shop.clf").aliases == {"champion": 3, "challenger": 2}


@pytest.mark.slow
def test_two_concurrent_trainings_of_one_model_end_with_exactly_one_champion(
    home, defs_dir, write_pipeline, recorded, tmp_path
):
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _batch(1000, 0, 1)})
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update(
        SLIPWAY_ALLOWED_IMPORTS='["sklearn", "recording_model"]',
        SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI=f"sqlite:///{shared}/mlflow.db",
        PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
        # The champion takes 3 s to score in each process: both decisions are open at once.
        RECORDING_MODEL_DELAY="3",
    )
    slipway = [str(Path(sys.executable).parent / "slipway"), "--defs", str(defs_dir), "run"]

    def start(name: str) -> subprocess.Popen[str]:
        # One SLIPWAY_HOME (Dagster instance) each, one MLflow registry for all: two machines.
        own = {**env, "SLIPWAY_HOME": str(tmp_path / name)}
        return subprocess.Popen(slipway, cwd=REPO, env=own, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = start("home0")
    assert first.wait(timeout=300) == 0, first.stdout.read() if first.stdout else ""
    write_pipeline("shop", PIPELINE.replace("DEPTH", "4"))  # both challengers beat v1
    racers = [start("home1"), start("home2")]
    outputs = [p.communicate(timeout=300)[0] for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outputs

    client = MlflowClient(tracking_uri=f"sqlite:///{shared}/mlflow.db")
    decisions = {v: client.get_model_version("shop.clf", v).tags["slipway.promotion"] for v in ("2", "3")}
    promoted = [v for v, reason in decisions.items() if reason.startswith("beats champion v1")]
    assert len(promoted) == 1, decisions
    (other,) = {"2", "3"} - set(promoted)
    assert decisions[other].startswith(f"does not beat champion v{promoted[0]}:"), decisions
    assert client.get_registered_model("shop.clf").aliases == {"champion": int(promoted[0]), "challenger": int(other)}


def test_a_training_waits_while_its_model_pool_slot_is_taken(home, defs_dir, write_pipeline, recorded):
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _batch(500, 0, 1)})
    run(defs_dir=defs_dir)
    write_pipeline("shop", PIPELINE.replace("DEPTH", "4"))
    pool = "slipway-model-shop.clf"
    reports = []
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        storage = instance.event_log_storage
        # Another run on this instance (a UI launch, a sensor) is training shop.clf.
        instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="another-run", status=DagsterRunStatus.STARTED))
        assert storage.claim_concurrency_slot(pool, "another-run", "shop__clf").is_claimed
        worker = threading.Thread(target=lambda: reports.append(run(defs_dir=defs_dir)))
        worker.start()
        deadline = time.monotonic() + 60
        while not storage.get_concurrency_info(pool).pending_steps and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        assert worker.is_alive(), "the training did not wait for the pool slot"
        assert [s.run_id for s in storage.get_concurrency_info(pool).pending_steps] != []
        assert [str(v.version) for v in _client(home).search_model_versions("name='shop.clf'")] == ["1"]
        storage.free_concurrency_slots_for_run("another-run")
        worker.join(timeout=600)  # a hang guard: a loaded machine is slow, not stuck
    assert not worker.is_alive()
    assert _outcome(reports[0]).status == "built"


def test_a_killed_slipway_run_does_not_hold_its_model_pool_slot(home, defs_dir, write_pipeline, recorded):
    write_pipeline("shop", PIPELINE.replace("DEPTH", "1"), {"data/batch_000.csv": _batch(500, 0, 1)})
    run(defs_dir=defs_dir)
    write_pipeline("shop", PIPELINE.replace("DEPTH", "4"))
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        # What a `slipway run` killed mid-training leaves behind: its run STARTED, its slot claimed.
        dead = DagsterRun(
            job_name="__ASSET_JOB",
            run_id="killed-run",
            status=DagsterRunStatus.STARTED,
            tags={"slipway/command": "run"},
        )
        instance.add_run(dead)
        assert instance.event_log_storage.claim_concurrency_slot("slipway-model-shop.clf", "killed-run", "s").is_claimed
    reports = []
    worker = threading.Thread(target=lambda: reports.append(run(defs_dir=defs_dir)), daemon=True)
    worker.start()
    worker.join(timeout=600)  # a hang guard: a loaded machine is slow, not stuck
    assert not worker.is_alive(), "the run waited for a slot held by a dead run"
    assert _outcome(reports[0]).status == "built"
