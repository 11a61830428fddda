"""Four processes starting on one brand-new MLflow database all succeed (issue 7, part)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

# Four processes importing MLflow or Dagster at once: minutes on a loaded 2-core machine. The bound
# only catches a hang (a lock never released), never slowness.
pytestmark = pytest.mark.slow
HANG = 900

CODE = """
import sys
from resources import mlflow_client
client = mlflow_client.client(sys.argv[1])
client.search_experiments()
print("ok")
"""


def test_concurrent_first_use_of_a_new_mlflow_database(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", CODE, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [p.communicate(timeout=HANG) + (p.returncode,) for p in procs]
    failures = [err[-500:] for out, err, code in results if code != 0 or out.strip() != "ok"]
    assert failures == []


DAGSTER = """
import dagster as dg
from stacks import load_stack
from stacks.build import prepare_instance

with dg.DagsterInstance.from_config(str(prepare_instance(load_stack().stack))) as instance:
    instance.get_runs(limit=1)
    instance.event_log_storage.get_concurrency_keys()
    instance.schedule_storage.all_instigator_state()
    instance.run_storage.get_run_records(limit=1)
print("ok")
"""


def test_concurrent_first_use_of_a_new_dagster_home(tmp_path):
    env = {**__import__("os").environ, "SLIPWAY_HOME": str(tmp_path / "home")}
    env.pop("SLIPWAY_STACK", None)
    for attempt in ("new home", "storage deleted by hand"):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", DAGSTER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
            for _ in range(4)
        ]
        results = [p.communicate(timeout=HANG) + (p.returncode,) for p in procs]
        failures = [err[-800:] for out, err, code in results if code != 0 or out.strip() != "ok"]
        assert failures == [], attempt
        shutil.rmtree(tmp_path / "home" / "dagster" / "storage")
