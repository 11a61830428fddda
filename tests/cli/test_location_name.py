"""The code location `slipway dev` serves is named after the project, not after the clone's folder."""

from __future__ import annotations

import os
import signal
import tomllib
import uuid

import pytest
from test_dev import MARKER, REPO, _free_port, _graphql, _kill_marked, _start_dev, _stop, _wait_http

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

LOCATIONS = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"


@pytest.mark.slow
def test_dev_names_the_code_location_after_the_project(home, tmp_path):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    dagster_port, mlflow_port = _free_port(), _free_port()
    marker, log = uuid.uuid4().hex, tmp_path / "dev.log"
    env = {**os.environ, "SLIPWAY_HOME": str(home), MARKER: marker}
    proc = _start_dev(log, env, "--port", str(dagster_port), "--mlflow-port", str(mlflow_port))
    try:
        assert _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180) == 200
        nodes = _graphql(dagster_port, LOCATIONS)["repositoriesOrError"]["nodes"]
        assert _stop(proc, signal.SIGINT) < 10
    finally:
        left = _kill_marked(marker)
    assert not left, left
    assert [node["location"]["name"] for node in nodes] == [project], log.read_text()[-3000:]
