"""The chart and the image on a real Kubernetes 1.20 (tests/cluster/kube.py), asserted on the cluster's own objects.

The last test stops the cluster and checks the host is as it was before the tier started.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import kube
import pytest
from conftest import HERE, RELEASE, Release


def _job(release: Release, name: str, script: str, image: str, **container: object) -> dict:
    """Run ``script`` in a Job of the project image, as the chart runs its pods; its finished Job."""
    security = release.values.get("securityContext", {})
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": release.namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": security.get("runAsUser", 10001)},
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-c", textwrap.dedent(script)],
                            "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
                            **container,
                        }
                    ],
                }
            },
        },
    }
    subprocess.run(
        kube.in_ns(kube.kubectl_binary(), f"--kubeconfig={kube.RUN / 'admin.kubeconfig'}", "apply", "-f", "-"),
        input=json.dumps(job), check=True, capture_output=True, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = release.json(f"job/{name}").get("status", {})
        if status.get("succeeded") or status.get("failed"):
            return release.json(f"job/{name}")
        time.sleep(1)
    pytest.fail(f"job {name} did not finish: {release.kubectl('describe', f'job/{name}', check=False).stdout}")


def test_the_image_runs_as_its_user_with_a_read_only_root(release: Release, image: str):
    script = """
        import os, pathlib, dagster, mlflow
        import lightgbm, sklearn  # the examples' estimators (LightGBM needs libgomp1 in the image)
        print("uid", os.getuid(), "dagster", dagster.__version__, "mlflow", mlflow.__version__)
        try:
            pathlib.Path("/app/written").write_text("x")
        except OSError as exc:
            print("root is read-only:", exc.strerror)
    """
    done = _job(release, "image-check", script, image)
    assert done["status"].get("succeeded") == 1, done["status"]
    log = release.kubectl("logs", "job/image-check").stdout
    assert "uid 10001 dagster 1.13.27 mlflow 3.17.2" in log
    assert "root is read-only: Read-only file system" in log


def test_the_chart_installs_and_its_servers_answer(release: Release):
    pods = release.json("pods", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    ready = {
        p["metadata"]["labels"]["app.kubernetes.io/component"]: all(
            c["ready"] for c in p["status"]["containerStatuses"]
        )
        for p in pods
        if p["metadata"].get("deletionTimestamp") is None
    }
    assert ready == {"code-server": True, "mlflow": True}
    # Each server answers through its Service, by name, as the run and step pods will reach it.
    mlflow = kube.run_in_cluster(release.namespace, "curl", "-sf", f"http://{RELEASE}-mlflow:5000/health")
    assert mlflow.returncode == 0 and mlflow.stdout.strip() == "OK", mlflow
    dagster = Path(sys.executable).parent / "dagster"
    grpc = kube.run_in_cluster(release.namespace, dagster, "api", "grpc-health-check", "--host", f"{RELEASE}-code-server", "--port", "3030")  # fmt: skip
    assert grpc.returncode == 0, grpc


def test_secrets_are_referenced_not_inlined(release: Release):
    objects = release.kubectl(
        "get", "deployments,configmaps,services,serviceaccounts,roles,rolebindings", "-o", "json"
    ).stdout
    for password in release.passwords.values():
        assert password not in objects
    code_server = release.json(f"deployment/{RELEASE}-code-server")
    (container,) = code_server["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "slipway-postgres", "key": "postgresql-password"}
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "slipway-s3"


def test_build_and_start_again_reuse_the_cache(cluster: dict):
    done = subprocess.run([str(HERE / "build.sh")], capture_output=True, text=True, check=True)
    assert "building" not in done.stderr and "fetching" not in done.stderr, done.stderr
    pids = kube.host_state()["processes"]
    kube.start()
    assert kube.host_state()["processes"] == pids  # the running cluster is reused, not restarted


def test_stop_leaves_the_host_as_it_was(cluster: dict):
    """Last in the file: stops the cluster (the session fixture's stop then finds nothing to do)."""
    kube.stop()
    assert kube.host_state() == cluster["host before"]
