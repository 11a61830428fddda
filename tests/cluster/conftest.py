"""The cluster tier's fixtures: a real one-node Kubernetes 1.20, the project image in it, the chart installed.

The tier runs alone with ``uv run pytest tests/cluster`` (or ``-m cluster``); it needs root and
the Debian packages ``tests/cluster/deps.sh`` installs. The first run builds Kubernetes and the
image into the cache (``/var/cache/slipway-kube``, a few minutes); later runs reuse both. The
cluster is stopped at the end of the session, leaving nothing running and no namespace behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kube
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART = REPO / "helm" / "slipway"
RELEASE = "slipway"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.slow)


def _script(name: str, *args: str) -> str:
    done = subprocess.run([str(HERE / name), *args], capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"tests/cluster/{name} failed:\n{done.stderr[-4000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def cluster() -> Iterator[dict[str, Any]]:
    """The cluster, started (built first if the cache lacks it) and stopped at the end of the session.

    A cluster left running (a session before this one) is stopped first, so what the host was
    like before is known (``host before``: :func:`kube.host_state`). A session running beside
    this one (another pytest, a benchmark) is not stopped: this one fails at once, naming it.
    """
    if os.geteuid() != 0:
        pytest.skip("the cluster tier needs root (network and mount namespaces, containerd); CI runs it as root")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(kube.session())
        except kube.ClusterBusy as busy:
            pytest.fail(str(busy))
        _script("deps.sh")
        _script("build.sh")
        kube.stop()
        before = kube.host_state()
        try:
            kube.start()
            yield {"host before": before}
        finally:
            if not os.environ.get("SLIPWAY_KUBE_KEEP"):  # set it to look at a failure in the cluster
                kube.stop()


@pytest.fixture(scope="session")
def image(cluster: dict[str, Any]) -> str:
    """The project image, built with podman and loaded into the cluster's containerd."""
    return _script("image.sh", "--load")


@dataclass
class Release:
    namespace: str
    values: dict[str, Any]
    passwords: dict[str, str]

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kube.kubectl("-n", self.namespace, *args, check=check)

    def json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def cluster_values(image: str) -> dict[str, Any]:
    """The chart's values for the test cluster: its image, its S3 server, alerts in the log."""
    repository, tag = image.rsplit(":", 1)
    endpoint = f"http://slipway-s3:{kube.S3_PORT}"
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "stack": {
            "artifact_store": {"endpoint_url": endpoint, "region": "us-east-1"},
            "alerter": {"type": "log", "url_env": None},
        },
        "mlflow": {"artifacts": {"endpointUrl": endpoint, "region": "us-east-1"}},
        # Small requests: one node of 2 cores holds the code server, MLflow and the step pods.
        "codeServer": {"resources": {"requests": {"cpu": "100m", "memory": "512Mi"}}},
        "runPods": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
    }


@pytest.fixture(scope="session")
def release(image: str, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """The chart installed (`helm install --wait`) in a namespace of its own, with its Secrets and stores."""
    installed = install(image, f"slipway-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("release"))
    if isinstance(installed, str):
        pytest.fail(installed)
    return installed


def install(image: str, namespace: str, folder: Path) -> Release | str:
    """Install the chart in ``namespace`` (fresh databases, Secrets, a bucket); the release, or why not."""
    for old in kube.kubectl("get", "namespaces", "-o", "name").stdout.split():
        if old.startswith("namespace/slipway-"):  # an earlier session's: its databases are gone
            kube.kubectl("delete", old, "--wait=false")
    passwords = {"dagster": secrets.token_hex(12), "mlflow": secrets.token_hex(12), "s3": secrets.token_hex(12)}
    for name in ("dagster", "mlflow"):
        kube.psql(f"drop database if exists {name} with (force)")
        kube.database(name, name, passwords[name])
    kube.kubectl("create", "namespace", namespace)
    kube.external_services(namespace)
    mlflow_uri = f"postgresql+psycopg2://mlflow:{passwords['mlflow']}@slipway-postgresql:{kube.PG_PORT}/mlflow"
    secrets_ = [
        ("slipway-postgres", {"postgresql-password": passwords["dagster"]}),
        ("slipway-s3", {"AWS_ACCESS_KEY_ID": "slipway", "AWS_SECRET_ACCESS_KEY": passwords["s3"]}),
        ("slipway-mlflow-db", {"uri": mlflow_uri}),
    ]
    for name, literals in secrets_:  # through stdin: a password on a command line is visible to every user
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": literals,
        }
        kube.apply(secret)
    kube.s3_bucket("slipway")
    values = cluster_values(image)
    values_file = folder / "values.json"
    values_file.write_text(json.dumps(values))
    installed = kube.helm("install", RELEASE, CHART, "-n", namespace, "-f", values_file, "--wait", "--timeout", "5m")
    if installed.returncode:
        pods = kube.kubectl("-n", namespace, "describe", "pods", check=False).stdout
        return f"helm install failed: {installed.stderr}\n{pods[-3000:]}"
    return Release(namespace, values, passwords)
