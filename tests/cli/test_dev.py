"""`slipway dev` serves both UIs and stops both on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s")


QUERY = """
{
  assetNodes { assetKey { path } }
  assetOrError(assetKey: {path: ["houses", "price_model"]}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        metadataEntries {
          label
          ... on UrlMetadataEntry { url }
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
}
"""


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.mark.slow
def test_dev_serves_dagster_and_mlflow_and_stops_on_ctrl_c(home):
    dagster_port, mlflow_port = _free_port(), _free_port()
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    slipway = str(Path(sys.executable).parent / "slipway")
    built = subprocess.run([slipway, "run", "houses"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "slipway"),
            "dev",
            "--port",
            str(dagster_port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120) == 200
        assert _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180) == 200
        # The UI shows every example asset, and the model's materialization links to MLflow.
        data = _graphql(dagster_port, QUERY)
        keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
        assert {"churn/customers", "churn/churn_classifier", "houses/price_model", "diabetes/progression_lgbm"} <= keys
        entries = data["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
        metadata = {
            e["label"]: e.get("url") or e.get("intValue") or e.get("floatValue") or e.get("text") for e in entries
        }
        assert metadata["mlflow_run"].startswith("http://127.0.0.1:5000/#/experiments/")
        assert metadata["model_version"] == 1 and metadata["alias"] == "champion"
        assert isinstance(metadata["metric_r2"], float)
        run_id = metadata["mlflow_run"].rsplit("/", 1)[1]
        # ...and that run is served by the MLflow UI started alongside.
        with urllib.request.urlopen(
            f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/runs/get?run_id={run_id}", timeout=30
        ) as response:
            assert json.loads(response.read())["run"]["info"]["status"] == "FINISHED"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for port in (dagster_port, mlflow_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after Ctrl-C"
