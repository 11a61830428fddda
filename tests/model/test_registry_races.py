"""Two homes sharing one `mlflow server` train the same new models at the same moment.

Each home is a `slipway run` process with its own SLIPWAY_HOME (its own Dagster instance, so
no Dagster pool keeps the two trainings apart), both on one real `mlflow server`. The training
function (:mod:`racing_model`) returns only when its rival has also finished fitting, so the
experiment, the dataset, the registered model and the alias are created by both at once. Each
pipeline is a first training (nothing registered yet): every "create" races.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import racing_model
from mlflow import MlflowClient
from mlflow_server import MlflowServer
from services import postgres_answers, scratch_databases

from resources.registry import PROMOTING_TAG

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(racing_model.__file__).parent
SLIPWAY = str(Path(sys.executable).parent / "slipway")
RACES = 6
# The tracker's failure when two runs create the same dataset at once.

PIPELINE = """
type: assets.Pipeline
attributes:
  name: NAME
  datasets:
    rows:
      source: {path: data/rows.csv}
  models:
    clf:
      dataset: rows
      target: label
      train: racing_model:fit
      params: {barrier: NAME, max_depth: 3}
      split: {test_size: 0.25, seed: 0}
      metrics: [accuracy]
"""


def _rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(0, 1, 400), rng.normal(0, 1, 400)
    return pd.DataFrame({"x1": x1, "x2": x2, "label": (x1 + x2 > 0).astype(int)})


def _stack(tmp: Path, url: str) -> Path:
    path = tmp / "shared-server.yaml"
    path.write_text(
        "orchestrator: {type: in_process}\n"
        'instance: {storage: sqlite, base_dir: "${SLIPWAY_HOME}/dagster"}\n'
        f"experiment_tracker: {{type: mlflow_server, tracking_uri: '{url}', serialization: cloudpickle}}\n"
        "model_registry: {type: mlflow}\n"
        'artifact_store: {type: local, base_dir: "${SLIPWAY_HOME}/artifacts"}\n'
        "data_validator: {type: great_expectations}\n"
        "drift_detector: {type: statistical}\n"
        "alerter: {type: log}\n"
        "allowed_imports: [sklearn, racing_model]\n"
    )
    return path


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` whose backend store is a SQLite file, or a PostgreSQL database.

    One per backend for the module (its start is most of a test's set-up): the tests register
    models of names of their own.
    """
    with contextlib.ExitStack() as stack:
        backend = None
        if request.param == "postgres":
            if not postgres_answers():
                pytest.fail("PostgreSQL does not answer on 127.0.0.1:5432 (`.ci/run` starts it)")
            database = stack.enter_context(scratch_databases("mlflow"))["mlflow"]
            backend = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
        mlflow = MlflowServer(tmp_path_factory.mktemp("mlflow"), backend=backend)
        mlflow.start()
        stack.callback(mlflow.stop)
        yield mlflow


def test_two_homes_training_the_same_new_models_at_once_both_succeed_and_one_compares_with_the_other(
    server, tmp_path, write_pipeline, defs_dir
):
    names = [f"race{i}" for i in range(RACES)]
    for name in names:
        write_pipeline(name, PIPELINE.replace("NAME", name), {"data/rows.csv": _rows()})
    stack = _stack(tmp_path, server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env.update(
        RACING_BARRIER_DIR=str(tmp_path / "barriers"),
        PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
    )

    def start(home: str) -> subprocess.Popen[str]:
        own = {**env, "SLIPWAY_HOME": str(tmp_path / home)}
        command = [SLIPWAY, "--stack", str(stack), "--defs", str(defs_dir), "run"]
        return subprocess.Popen(command, cwd=REPO, env=own, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    homes = [start("home-a"), start("home-b")]
    outputs = [p.communicate(timeout=600)[0] for p in homes]

    client = MlflowClient(tracking_uri=server.url)
    raced = 0
    for name in names:
        registered = f"{name}.clf"
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{registered}'"))
        assert versions == [1, 2], (registered, versions, outputs)
        raced += 1
        tags = {v: client.get_model_version(registered, str(v)).tags for v in versions}
        decisions = {v: t["slipway.promotion"] for v, t in tags.items()}
        # One of them found no champion; the other was compared with it (never both "no champion").
        unopposed = [v for v, reason in decisions.items() if reason == "gates passed; no champion to beat"]
        assert len(unopposed) == 1, decisions
        (first,) = unopposed
        (second,) = set(versions) - {first}
        assert tags[second]["slipway.compared_with"] == str(first), decisions
        # The same data and parameters make the same model: the second does not beat the first.
        assert decisions[second].startswith(f"does not beat champion v{first}:"), decisions
        assert client.get_registered_model(registered).aliases == {"champion": str(first), "challenger": str(second)}
        assert not any(PROMOTING_TAG in t for t in tags.values()), tags  # both turns ended
        # Each run logged its dataset (the same name and digest, created once).
        for v in versions:
            run = client.get_run(client.get_model_version(registered, str(v)).run_id)
            assert [d.dataset.name for d in run.inputs.dataset_inputs] == [f"{name}/rows"], registered
    assert [p.returncode for p in homes] == [0, 0], "\n\n".join(outputs)
    assert raced == RACES


def test_a_version_moves_its_alias_after_the_earlier_versions_and_never_waits_for_a_dead_one_for_long(
    server, monkeypatch
):
    from resources import registry as registry_module
    from resources.mlflow_registry import MlflowModelRegistry

    registry = MlflowModelRegistry(tracking_uri=server.url)
    client = MlflowClient(tracking_uri=server.url)
    run = client.create_run(client.create_experiment("turns"))
    source = f"{run.info.artifact_uri}/model"

    def register() -> str:
        return registry.register("turns.clf", source, run.info.run_id, {}, takes_turn=True)

    first, second = register(), register()
    assert client.get_model_version("turns.clf", first).tags[PROMOTING_TAG] == "true"
    waited: list[list[str]] = []
    waiting = threading.Thread(target=lambda: waited.append(registry.wait_turn("turns.clf", second)))
    waiting.start()
    time.sleep(1.5)
    assert waiting.is_alive(), "v2 did not wait for v1's promotion"
    registry.end_turn("turns.clf", first)
    waiting.join(timeout=120)
    assert waited == [[]]
    assert PROMOTING_TAG not in client.get_model_version("turns.clf", first).tags
    registry.end_turn("turns.clf", second)

    # A training that died holding its turn (v3) is waited for at most TURN_SECONDS, and named.
    monkeypatch.setattr(registry_module, "TURN_SECONDS", 1.0)
    dead, third = register(), register()
    started = time.monotonic()
    assert registry.wait_turn("turns.clf", third) == [dead]
    # At least the turn's length; the bound only tells the patched 1 s turn from the real 120 s
    # one (30 s: a busy machine does not fail it).
    assert 0.9 < time.monotonic() - started < 30
    # An abandoned version's turn is over (recovery tags it when its training is known dead).
    registry.tag_version("turns.clf", dead, {"slipway.abandoned": "its training died"})
    assert registry.wait_turn("turns.clf", third) == []
