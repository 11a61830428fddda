"""A champion whose model files were deleted: a failing check and an alert, and it gives up its alias.

The served model cannot be loaded, so `slipway run` shows it as a failed ``champion_loadable``
check on the model asset, with an alert through the stack's alerter (a real webhook here). A new
version that fails its gates leaves things as they are; one that passes them takes the alias,
and says why in its tags and its materialization.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from views import stack_instance
from webhook import Hook

from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

PIPELINE = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
  models:
    clf:
      dataset: orders
      target: returned
      features: [x1, x2]
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 1, min_samples_leaf: LEAF, random_state: 0}
      split: {test_size: 0.25, seed: 0, by: row_id}
      metrics: [accuracy]
      promote: {gates: {accuracy: ">= GATE"}}
"""
KEY = dg.AssetKey(["shop", "clf"])
CHAMPION_CHECK = "champion_loadable"


def _orders() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(0, 1, 800), rng.normal(0, 1, 800)
    returned = ((x1 + 0.5 * x2 + rng.normal(0, 0.3, 800)) > 0).astype(int)
    return pd.DataFrame({"row_id": np.arange(800), "x1": x1, "x2": x2, "returned": returned})


@pytest.fixture
def hook(monkeypatch):
    server = Hook()
    monkeypatch.setenv("SLIPWAY_ALERTER__TYPE", "webhook")
    monkeypatch.setenv("SLIPWAY_ALERT_WEBHOOK", server.url)
    yield server
    server.close()


def _checks() -> list[tuple[bool, str]]:
    with stack_instance() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(KEY, CHAMPION_CHECK), limit=50
        )
        return [
            (r.event.dagster_event.event_specific_data.passed, r.event.dagster_event.event_specific_data.description)
            for r in reversed(records)
        ]


def _alerts(hook: Hook, kind: str) -> list[str]:
    return [f"{b['slipway']['title']}: {b['slipway']['text']}" for b in hook.bodies if b["slipway"]["kind"] == kind]


def _outcome(report):
    return next(o for o in report.outcomes if o.key == "shop/clf")


def test_a_champion_whose_files_are_gone_fails_its_check_and_a_version_that_passes_its_gates_takes_its_alias(
    home, defs_dir, write_pipeline, hook
):
    def define(leaf: int, gate: float) -> None:
        write_pipeline("shop", PIPELINE.replace("LEAF", str(leaf)).replace("GATE", str(gate)), {})

    write_pipeline("shop", PIPELINE.replace("LEAF", "1").replace("GATE", "0.6"), {"data/orders.csv": _orders()})
    assert _outcome(run(defs_dir=defs_dir)).alias == "champion"
    define(2, 0.6)  # the same stump: it does not beat v1, and becomes challenger
    assert (_outcome(run(defs_dir=defs_dir)).alias) == "challenger"
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    model_dir = Path(client.get_run(client.get_model_version("shop.clf", "1").run_id).info.artifact_uri[7:]) / "model"
    shutil.rmtree(model_dir)

    # Nothing to rebuild (v2, the latest, is whole), but the served champion cannot be loaded. (A
    # run that replays the no-op cache of the same command asks the stores nothing, and that
    # cache does not rest on the champion's files: this is a run of its own, by pipeline name.)
    report = run(["shop"], defs_dir=defs_dir)
    assert _outcome(report).status == "reused"
    gone = f"shop.clf: champion v1 cannot be loaded: the files of shop.clf v1 are gone ({model_dir})"
    assert ("error", gone) in report.aliases and not report.ok
    assert _checks()[-1] == (False, gone)
    assert _alerts(hook, "check_failed") == [f"shop/clf: champion v1 cannot be loaded: {gone}"]
    assert not run(["shop"], defs_dir=defs_dir).ok  # still failing, reported once: no second alert
    assert len(_alerts(hook, "check_failed")) == 1

    # A version that fails its gates gets no alias: the champion stays unloadable.
    define(3, 0.99)
    failed = _outcome(run(defs_dir=defs_dir))
    assert (failed.model_version, failed.alias) == ("3", None)
    assert client.get_registered_model("shop.clf").aliases == {"champion": 1, "challenger": 2}
    assert _checks()[-1][0] is False

    # One that passes them takes the alias from it, and says why.
    define(4, 0.6)
    report = run(defs_dir=defs_dir)
    outcome = _outcome(report)
    assert (outcome.status, outcome.model_version, outcome.alias) == ("built", "4", "champion")
    reason = client.get_model_version("shop.clf", "4").tags["slipway.promotion"]
    assert reason.startswith("gates passed; champion v1 cannot be loaded (the files of shop.clf v1 are gone"), reason
    assert reason.endswith("): it gives up its alias"), reason
    with stack_instance() as instance:
        materialization = instance.get_latest_materialization_event(KEY).asset_materialization
        assert materialization.metadata["promotion"].value == reason
    assert client.get_registered_model("shop.clf").aliases == {"champion": 4, "challenger": 2}
    assert _checks()[-1] == (True, "champion v4 can be loaded")
    assert report.ok, report.aliases
    assert _alerts(hook, "promotion")[-1] == f"shop.clf: v4 promoted to champion: {reason}"
