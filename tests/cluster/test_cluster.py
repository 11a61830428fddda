"""The chart and the image on a real Kubernetes 1.20 (tests/cluster/kube.py), asserted on the cluster's own objects.

The last test stops the cluster and checks the host is as it was before the tier started.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import kube
import pytest
from conftest import CHART, HERE, RELEASE, Release


def _job(
    release: Release,
    name: str,
    script: str,
    image: str,
    *,
    service_account: str | None = None,
    volumes: list | None = None,
    **container: object,
) -> dict:
    """Run ``script`` (or ``command=``) in a Job of the project image, as the chart runs its pods; its finished Job."""
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
                    **(
                        {"serviceAccountName": service_account, "automountServiceAccountToken": True}
                        if service_account
                        else {}
                    ),
                    **({"volumes": volumes} if volumes else {}),
                }
            },
        },
    }
    kube.apply(job)
    return _wait_for_job(release, name, seconds=180)


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


def _wait_for_job(release: Release, name: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = release.kubectl("get", f"job/{name}", "-o", "json", check=False)
        if found.returncode == 0:
            status = json.loads(found.stdout).get("status", {})
            if status.get("succeeded") or status.get("failed"):
                return json.loads(found.stdout)
        time.sleep(2)
    pods = release.kubectl("get", "pods", "-o", "wide", check=False).stdout
    pytest.fail(f"job {name} did not finish in {seconds:.0f} s:\n{pods}")


def _run_status(run_id: str) -> str:
    return kube.psql(f"select status from runs where run_id = '{run_id}'", "dagster").stdout.strip()


@pytest.fixture(scope="module")
def launched(release: Release) -> dict:
    """Every asset of the image's example pipelines, launched through Dagster's run launcher.

    The launch pod stands where the official Dagster chart's daemon stands (helm/dagster-values.yaml):
    the instance's dagster.yaml (its ConfigMap), a K8sRunLauncher in the cluster, the code server
    as the workspace. The run worker pod then launches one step Job per asset (k8s_job).
    """
    started = time.monotonic()
    run_id = launch(release)
    run_job = _wait_for_job(release, f"dagster-run-{run_id}", seconds=1200)
    return {"run_id": run_id, "run_job": run_job, "seconds": time.monotonic() - started}


def launch(release: Release, ops: str | None = None, check: bool = True, tags: dict | None = None) -> str:
    """Launch every asset of the code location (or the ``ops`` selection) through Dagster's
    K8sRunLauncher, from a pod (Job ``launch-<the ID's first 8>``); the run's ID. ``check``: the
    launch pod must succeed; ``tags``: the run's (a partition, say)."""
    run_id = str(uuid.uuid4())
    if release.kubectl("get", "configmap/dagster-instance", check=False).returncode:
        instance = launcher_instance(release.namespace)
        server = {"host": f"{RELEASE}-code-server", "port": 3030, "location_name": "slipway"}
        workspace = {"load_from": [{"grpc_server": server}]}
        kube.kubectl("-n", release.namespace, "create", "configmap", "dagster-instance",
                     f"--from-literal=dagster.yaml={json.dumps(instance)}",
                     f"--from-literal=workspace.yaml={json.dumps(workspace)}")  # fmt: skip
        _launcher_account(release.namespace)
    home = "/opt/dagster/dagster_home"
    command = ["dagster", "job", "launch", "-w", f"{home}/workspace.yaml", "-l", "slipway", "-j", "__ASSET_JOB"]
    password = {"secretKeyRef": {"name": "slipway-postgres", "key": "postgresql-password"}}
    done = _job(
        release, f"launch-{run_id[:8]}", "", release.values["image"]["repository"] + ":" + release.values["image"]["tag"],
        command=[*command, "--run-id", run_id, *(["-o", ops] if ops else []), *(["--tags", json.dumps(tags)] if tags else [])],
        env=[{"name": "DAGSTER_HOME", "value": home}, {"name": "DAGSTER_PG_PASSWORD", "valueFrom": password}],
        volumeMounts=[{"name": "instance", "mountPath": home}],
        service_account="launcher", volumes=[{"name": "instance", "configMap": {"name": "dagster-instance"}}],
    )  # fmt: skip
    if check:
        assert done["status"].get("succeeded") == 1, release.kubectl(
            "logs", f"job/launch-{run_id[:8]}", check=False
        ).stdout
    return run_id


def _launcher_account(namespace: str) -> None:
    """The launch pod's own account, as the Dagster chart gives its daemon: it creates the run's Job."""
    rules = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list"]}]
    subject = [{"kind": "ServiceAccount", "name": "launcher", "namespace": namespace}]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "launcher"}
    meta = {"name": "launcher", "namespace": namespace}
    for manifest in [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta, "subjects": subject, "roleRef": role_ref},
    ]:  # fmt: skip
        kube.apply(manifest)


def launcher_instance(namespace: str) -> dict:
    """The instance the official chart's daemon has (its dagster.yaml), with runs launched at once."""
    database = {
        "hostname": "slipway-postgresql", "port": kube.PG_PORT, "db_name": "dagster", "username": "dagster",
        "password": {"env": "DAGSTER_PG_PASSWORD"}, "scheme": "postgresql+psycopg2",
    }  # fmt: skip
    return {
        "storage": {"postgres": {"postgres_db": database}},
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": {
                "service_account_name": "slipway",
                "instance_config_map": "dagster-instance",
                "postgres_password_secret": "slipway-postgres",
                "dagster_home": "/opt/dagster/dagster_home",
                "job_namespace": namespace,
                "load_incluster_config": True,
                "image_pull_policy": "IfNotPresent",
            },
        },
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
        "concurrency": {"pools": {"default_limit": 1, "granularity": "op"}},
        "telemetry": {"enabled": False},
    }


def test_a_run_launched_by_dagster_runs_each_asset_in_a_pod_of_its_own(release: Release, launched: dict):
    run_id = launched["run_id"]
    assert launched["run_job"]["status"].get("succeeded") == 1, launched["run_job"]["status"]
    assert _run_status(run_id) == "SUCCESS"
    steps = release.json("jobs", "-l", f"dagster/run-id={run_id},app.kubernetes.io/component=step_worker")["items"]
    pods = release.json("pods", "-l", f"dagster/run-id={run_id},app.kubernetes.io/component=step_worker")["items"]
    ops = {job["metadata"]["labels"]["dagster/op"] for job in steps}
    assert {"churn__churn_classifier", "churn__features", "diabetes__progression_lgbm", "houses__price_model"} <= ops
    assert all(job["status"].get("succeeded") == 1 for job in steps)
    assert len(pods) == len(steps)  # one pod per step, none retried
    for pod in pods:
        (state,) = pod["status"]["containerStatuses"]
        assert state["state"]["terminated"]["exitCode"] == 0, pod["metadata"]["name"]
    # The asset's own resources (churn's definition: cpu 1, memory 2Gi) are on its pod.
    (classifier,) = [p for p in pods if p["metadata"]["labels"]["dagster/op"] == "churn__churn_classifier"]
    resources = classifier["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "1", "memory": "2Gi"} and resources["limits"]["memory"] == "2Gi"
    # Every step pod runs as the image's user, with a read-only root.
    for pod in pods:
        context = pod["spec"]["containers"][0]["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["runAsUser"] == 10001


def test_the_records_land_in_postgres_mlflow_and_s3(release: Release, launched: dict):
    materialized = kube.psql(
        "select count(distinct asset_key) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'"
        f" and run_id = '{launched['run_id']}'",
        "dagster",
    ).stdout.strip()
    assert int(materialized) >= 10
    search = kube.run_in_cluster(
        release.namespace, "curl", "-sf", f"http://{RELEASE}-mlflow:5000/api/2.0/mlflow/registered-models/search"
    )
    names = {m["name"] for m in json.loads(search.stdout)["registered_models"]}
    assert {"churn.churn_classifier", "houses.price_model", "diabetes.progression_lgbm"} <= names
    listing = subprocess.run(
        kube.in_ns("curl", "-sf", f"http://{kube.NODE_IP}:{kube.S3_PORT}/slipway?list-type=2&prefix=artifacts/"),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "<Key>artifacts/churn/" in listing and "<Key>mlflow/" in subprocess.run(
        kube.in_ns("curl", "-sf", f"http://{kube.NODE_IP}:{kube.S3_PORT}/slipway?list-type=2&prefix=mlflow/"),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def _granted(role: dict) -> set[tuple[str, str]]:
    return {(verb, resource) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


def _used(namespace: str) -> list[tuple[str, str, int]]:
    """(verb, resource[/subresource], HTTP status) of each request the release's service account made."""
    found = []
    for entry in kube.audited(f"system:serviceaccount:{namespace}:slipway"):
        ref = entry.get("objectRef", {})
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        found.append((entry["verb"], resource, entry.get("responseStatus", {}).get("code", 0)))
    return found


def test_the_role_grants_what_the_run_used_and_nothing_cluster_wide(release: Release, launched: dict):
    role = release.json(f"role/{RELEASE}")
    used = _used(release.namespace)
    assert used, "the audit log holds no request of the release's service account"
    assert [u for u in used if u[2] == 403] == []
    # The run pod acts as the chart's account (the launch pod, the daemon's stand-in, has its own).
    assert {(verb, resource) for verb, resource, _ in used} <= _granted(role)
    assert {("create", "jobs"), ("get", "jobs/status")} <= {(v, r) for v, r, _ in used}
    bindings = kube.kubectl("get", "clusterrolebindings", "-o", "json").stdout
    assert f"system:serviceaccount:{release.namespace}" not in bindings and release.namespace not in bindings


def test_one_verb_fewer_in_the_role_breaks_the_launch(release: Release, launched: dict):
    """Without `create jobs` the run pod cannot start its steps: the run fails, naming the refusal."""
    original = release.json(f"role/{RELEASE}")
    narrowed = json.loads(json.dumps(original))
    for rule in narrowed["rules"]:
        if rule["resources"] == ["jobs"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != "create"]
    for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        narrowed["metadata"].pop(field, None)
    kube.apply(narrowed)
    try:
        run_id = launch(release)
        run_job = _wait_for_job(release, f"dagster-run-{run_id}", seconds=900)
        assert _run_status(run_id) == "FAILURE", run_job["status"]
        failures = kube.psql(
            "select event from event_logs where dagster_event_type in ('STEP_FAILURE', 'PIPELINE_FAILURE', 'ENGINE_EVENT')"
            f" and run_id = '{run_id}'",
            "dagster",
        ).stdout
        assert "forbidden" in failures.lower() and "jobs" in failures, failures[-3000:]
        assert ("create", "jobs", 403) in _used(release.namespace)
    finally:
        restored = json.loads(json.dumps(original))
        for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            restored["metadata"].pop(field, None)
        kube.apply(restored)


def test_a_second_slipway_run_from_the_host_reuses_what_the_cluster_built(
    release: Release, launched: dict, tmp_path: Path
):
    """`slipway run` on the host with the release's own stack (its ConfigMap) and secrets: the
    record in Postgres, MLflow and S3 say everything is current, so nothing is launched."""
    stack = tmp_path / "stack.yaml"
    stack.write_text(release.kubectl("get", f"configmap/{RELEASE}-stack", "-o", "jsonpath={.data.stack\\.yaml}").stdout)
    env = {
        "SLIPWAY_STACK": str(stack),
        "SLIPWAY_HOME": str(tmp_path / "home"),
        "DAGSTER_PG_PASSWORD": release.passwords["dagster"],
        "AWS_ACCESS_KEY_ID": "slipway",
        "AWS_SECRET_ACCESS_KEY": release.passwords["s3"],
        "NO_COLOR": "1",
    }
    slipway = Path(sys.executable).parent / "slipway"
    counts = "select (select count(*) from runs), (select count(*) from event_logs), (select count(*) from kvs)"
    runs = kube.psql(counts, "dagster").stdout.strip()
    again = kube.run_in_cluster(release.namespace, slipway, "run", env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    tally = again.stdout.strip().splitlines()[-1]  # "stack …: 12 reused in 6.9s": nothing else
    assert re.fullmatch(r"stack \S+: 12 reused in [0-9.]+s", tally), again.stdout
    assert kube.psql(counts, "dagster").stdout.strip() == runs  # nothing launched, observed or kept
    for secret in release.passwords.values():
        assert secret not in again.stdout + again.stderr


SERVED = "churn.churn_classifier"
SERVICE = "slipway-serve-churn-churn-classifier"
FEATURES = ["tenure", "monthly_charges", "support_calls", "contract_months", "logins_30d", "failed_payments_30d"]


def _score(release: Release) -> tuple[str, list]:
    """One scoring request to the served model's Service: the version that answered, and its answer."""
    body = json.dumps(
        {"dataframe_split": {"columns": FEATURES, "data": [[3, 95.0, 6, 1, 0, 2], [60, 20.0, 0, 24, 30, 0]]}}
    )
    # A Service is routed once kube-proxy has synced its rules, which may be after the pod is Ready:
    # a connection that fails or times out is tried again, for a while.
    deadline = time.monotonic() + 90
    while True:
        answer = kube.run_in_cluster(
            release.namespace, "curl", "-sf", "--connect-timeout", "5", "-m", "60", "-D", "-",
            "-H", "Content-Type: application/json", "--data", body, f"http://{SERVICE}:8080/invocations",
        )  # fmt: skip
        if answer.returncode not in (7, 28) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert answer.returncode == 0, answer
    head, _, payload = answer.stdout.replace("\r", "").partition("\n\n")
    version = next(
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.lower().startswith("x-slipway-model-version")
    )
    return version, json.loads(payload)["predictions"]


def test_the_champion_is_served_in_the_cluster_and_a_promotion_changes_what_answers(
    release: Release, launched: dict, tmp_path: Path
):
    values = {**release.values, "servedModels": [{"name": SERVED, "replicas": 1, "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1536Mi"}}}]}  # fmt: skip
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values))
    upgraded = kube.helm(
        "upgrade", RELEASE, CHART, "-n", release.namespace, "-f", values_file, "--wait", "--timeout", "5m"
    )
    assert upgraded.returncode == 0, (
        upgraded.stderr
        + release.kubectl("describe", "pods", "-l", "app.kubernetes.io/component=serve", check=False).stdout[-3000:]
    )
    version, predictions = _score(release)
    assert version == "1" and len(predictions) == 2 and set(predictions) <= {0, 1}

    # A promotion in the registry (here: a second version of the same model takes @champion).
    promote = f"""
import mlflow
client = mlflow.MlflowClient("http://{RELEASE}-mlflow:5000")
v1 = client.get_model_version("{SERVED}", "1")
v2 = client.create_model_version("{SERVED}", v1.source, run_id=v1.run_id)
client.set_registered_model_alias("{SERVED}", "champion", v2.version)
print(v2.version)
"""
    promoted = kube.run_in_cluster(
        release.namespace, sys.executable, "-c", promote, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    )
    assert promoted.returncode == 0 and promoted.stdout.strip() == "2", promoted.stderr
    deadline = time.monotonic() + 120  # the server polls the registry every 5 s; a generous bound, not a measurement
    while (answered := _score(release)[0]) != "2" and time.monotonic() < deadline:
        time.sleep(2)
    assert answered == "2"
    pods = release.json("pods", "-l", "app.kubernetes.io/component=serve")["items"]
    assert [p["status"]["containerStatuses"][0]["restartCount"] for p in pods] == [0]  # followed, not restarted


def test_a_value_the_cluster_would_refuse_fails_helm_install_naming_the_value(release: Release, tmp_path: Path):
    """A request above its limit passes the schema; the API server would refuse the Deployment
    naming its own field. The install fails naming the value, and nothing is created."""
    namespace = f"slipway-bad-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", namespace)
    try:
        values_file = tmp_path / "values.json"
        values_file.write_text(json.dumps(release.values))
        sets = ["codeServer.resources.requests.memory=4Gi", "codeServer.resources.limits.memory=1Gi"]
        installed = kube.helm(
            "install", RELEASE, CHART, "-n", namespace, "-f", values_file, *[a for s in sets for a in ("--set", s)],
            "--wait", "--timeout", "2m",
        )  # fmt: skip
        assert installed.returncode != 0
        assert (
            "codeServer.resources.requests.memory: 4Gi is above codeServer.resources.limits.memory" in installed.stderr
        )
        made = kube.kubectl("-n", namespace, "get", "all,configmaps,roles,serviceaccounts", "-o", "name").stdout.split()
        assert [m for m in made if "slipway" in m] == []
    finally:
        kube.kubectl("delete", "namespace", namespace, "--wait=false")


def _step_failures(run_id: str) -> list[dict]:
    """The errors of the run's failed steps, as Dagster recorded them (message, class)."""
    rows = kube.psql(
        f"select event from event_logs where dagster_event_type = 'STEP_FAILURE' and run_id = '{run_id}'", "dagster"
    ).stdout.split("\n")
    events = [json.loads(row) for row in rows if row.strip()]
    return [e["dagster_event"]["event_specific_data"]["error"] for e in events]


def _upgrade(release: Release, values: dict, folder: Path) -> None:
    """`helm upgrade -f` with ``values``, waited for (the code server restarts on a new stack).

    Not `--reuse-values --set`: with it, Helm 3 kept the `null` that removes a default
    (`alerter.url_env`) and its schema refused the result.
    """
    values_file = folder / "upgrade.json"
    values_file.write_text(json.dumps(values))
    upgraded = kube.helm(
        "upgrade", RELEASE, CHART, "-n", release.namespace, "-f", values_file, "--wait", "--timeout", "5m"
    )
    assert upgraded.returncode == 0, upgraded.stderr


def _current_values(release: Release) -> dict:
    return json.loads(kube.helm("get", "values", RELEASE, "-n", release.namespace, "-o", "json").stdout)


# why: (the step pods' orchestrator settings that keep them from starting, what the line says)
CANNOT_START = {
    # Only the node's store has the image: told to pull it always, the kubelet cannot.
    "image": ({"image_pull_policy": "Always"}, r"image {image} cannot be pulled \((ErrImagePull|ImagePullBackOff): "),
    # envFrom a Secret no one made: the kubelet cannot create the container.
    "secret": (
        {"env_secrets": ["slipway-not-made"]},
        r"its container cannot be created \(CreateContainerConfigError: secret \"slipway-not-made\" not found\)",
    ),
}


@pytest.mark.parametrize("why", CANNOT_START)
def test_a_step_pod_that_cannot_start_fails_its_step_in_one_line(
    release: Release, launched: dict, tmp_path: Path, why: str
):
    """Step pods told to pull an image no registry serves (it is only in the node's store), or to
    take their environment from a Secret that does not exist: the step fails naming the image or
    the Secret once pod_start_timeout passed, instead of the run waiting for ever, and its Job is
    gone. The settings are the step pods' only: the code server (restarted on the new stack)
    serves the launch, and the run pod records the step's failure and the run's."""
    image = release.values["image"]["repository"] + ":" + release.values["image"]["tag"]
    settings, expected = CANNOT_START[why]
    before = _current_values(release)
    changed = json.loads(json.dumps(before))
    orchestrator = changed.setdefault("stack", {}).setdefault("orchestrator", {})
    orchestrator.update({**settings, "pod_start_timeout": 10})
    _upgrade(release, changed, tmp_path)
    try:
        run_id = launch(release, ops="churn__customers")
        _wait_for_job(release, f"dagster-run-{run_id}", seconds=600)
        assert _run_status(run_id) == "FAILURE"
        (error,) = _step_failures(run_id)
        line = error["message"].strip()
        assert "\n" not in line, line
        assert re.search(
            r"step pod dagster-step-\S+ cannot start: " + expected.replace("{image}", re.escape(image)), line
        ), line
        steps = release.json("jobs", "-l", f"dagster/run-id={run_id},app.kubernetes.io/component=step_worker")
        assert steps["items"] == []  # deleted: it will not start later on its own
    finally:
        _upgrade(release, before, tmp_path)


def _mlflow_down(release: Release) -> None:
    release.kubectl("scale", f"deployment/{RELEASE}-mlflow", "--replicas=0")
    release.kubectl(
        "wait", "--for=delete", "pod", "-l", "app.kubernetes.io/component=mlflow", "--timeout=120s", check=False
    )


def _mlflow_up(release: Release) -> None:
    release.kubectl("scale", f"deployment/{RELEASE}-mlflow", "--replicas=1")
    release.kubectl("rollout", "status", f"deployment/{RELEASE}-mlflow", "--timeout=300s")


def _endpoint(release: Release, service: str, port: int) -> None:
    """Point ``service`` (one of the node's servers) at ``port`` (9: nothing listens, connections are refused)."""
    endpoints = release.json(f"endpoints/{service}")
    endpoints["subsets"][0]["ports"][0]["port"] = port
    for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        endpoints["metadata"].pop(field, None)
    kube.apply(endpoints)


# store: (what the step reads or writes there, take it away, give it back, the endpoint named)
UNREACHABLE = {
    "mlflow": ("churn__churn_classifier", _mlflow_down, _mlflow_up, f"http://{RELEASE}-mlflow:5000"),
    "s3": (  # an asset of one input: `dagster job launch -o` of an asset with two hands it a list (Dagster)
        "churn__churn_classifier",
        lambda release: _endpoint(release, "slipway-s3", 9),
        lambda release: _endpoint(release, "slipway-s3", kube.S3_PORT),
        f"http://slipway-s3:{kube.S3_PORT}, bucket slipway",
    ),
}


@pytest.mark.parametrize("store", UNREACHABLE)
def test_a_store_unreachable_from_a_step_fails_it_in_one_line_naming_the_endpoint(
    release: Release, launched: dict, store: str
):
    """The MLflow server scaled to zero, or the S3 Service pointed at a closed port: the step's
    error is Slipway's one line, naming the endpoint and no secret, and the run fails instead of
    hanging."""
    op, down, up, endpoint = UNREACHABLE[store]
    down(release)
    try:
        run_id = launch(release, ops=op)
        _wait_for_job(release, f"dagster-run-{run_id}", seconds=900)
        assert _run_status(run_id) == "FAILURE"
        (error,) = _step_failures(run_id)
        # Dagster wraps what an asset raises once (its UI shows both); the cause is Slipway's error.
        cause = error["cause"]
        lines = cause["message"].strip().splitlines()
        assert cause["cls_name"] == "ResourceError" and len(lines) == 1, cause["message"]
        assert endpoint in lines[0], lines[0]
        for secret in release.passwords.values():
            assert secret not in json.dumps(error)
    finally:
        up(release)


def test_the_instance_s_postgres_unreachable_from_a_pod_fails_the_launch_naming_it_never_the_password(
    release: Release, launched: dict
):
    """The Dagster instance's PostgreSQL Service pointed at a closed port: the pod that launches runs
    (where Dagster's daemon stands) fails instead of hanging; its log names the endpoint it
    dialed and holds no password; no run pod is created. The message is Dagster's (dagster-postgres
    opens the instance before any Slipway code runs in a pod): this checks that what the chart and
    the instance hand it never puts the password where an error could print it."""
    _endpoint(release, "slipway-postgresql", 9)
    try:
        run_id = launch(release, ops="churn__customers", check=False)  # waits a bounded time (_job)
        job = release.json(f"job/launch-{run_id[:8]}")
        log = release.kubectl("logs", f"job/launch-{run_id[:8]}", check=False).stdout
        assert job["status"].get("failed") and not job["status"].get("succeeded"), log[-3000:]
        assert re.search(rf'"slipway-postgresql" \([0-9.]+\), port {kube.PG_PORT} failed: Connection refused', log), (
            log[-3000:]
        )
        for secret in release.passwords.values():
            assert secret not in log
        assert release.kubectl("get", f"job/dagster-run-{run_id}", check=False).returncode != 0
    finally:
        _endpoint(release, "slipway-postgresql", kube.PG_PORT)


def _mlflow_runs(dagster_run_id: str) -> list[tuple[str, str]]:
    """(MLflow run ID, status) of the MLflow runs a Dagster run started."""
    rows = kube.psql(
        "select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid"
        f" where t.key = 'slipway.dagster_run_id' and t.value = '{dagster_run_id}'",
        "mlflow",
    ).stdout.split()
    return [tuple(row.split("|")) for row in rows]  # type: ignore[misc]


def _kill_once_its_mlflow_run_is_open(release: Release, run_id: str, selector: str) -> bool:
    """SIGKILL the step's container once its MLflow run is seen open; False when it finished first."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        pods = release.json("pods", "-l", selector)["items"]
        statuses = [p["status"].get("containerStatuses") or [{}] for p in pods]
        if any("terminated" in s[0].get("state", {}) for s in statuses):
            return False
        running = [s[0] for s in statuses if "running" in s[0].get("state", {})]
        if running and any(status == "RUNNING" for _, status in _mlflow_runs(run_id)):
            container = running[0]["containerID"].split("://", 1)[1]
            kube.ctr("tasks", "kill", "--signal", "SIGKILL", container, check=True, capture_output=True)
            return True
        time.sleep(0.2)
    pytest.fail(f"the training of run {run_id} neither opened its MLflow run nor ended in 600 s")


def test_a_step_pod_killed_mid_training_leaves_nothing_undecided_after_the_next_run(release: Release, launched: dict):
    """The training's container is killed (SIGKILL, as the OOM killer does) once its MLflow run
    is open; the run fails, and the model's next training settles what the killed one left:
    its MLflow run FAILED, any version it registered abandoned, the alias on a recorded version."""
    for _attempt in range(3):  # a training that closes its MLflow run between two looks is launched again
        run_id = launch(release, ops="churn__churn_classifier")
        selector = f"dagster/run-id={run_id},app.kubernetes.io/component=step_worker"
        if _kill_once_its_mlflow_run_is_open(release, run_id, selector):
            break
        _wait_for_job(release, f"dagster-run-{run_id}", seconds=600)
    else:
        pytest.fail("three trainings closed their MLflow run between two looks: nothing was killed")
    _wait_for_job(release, f"dagster-run-{run_id}", seconds=600)
    assert _run_status(run_id) == "FAILURE"
    (pod,) = release.json("pods", "-l", selector)["items"]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137

    again = launch(release, ops="churn__churn_classifier")
    _wait_for_job(release, f"dagster-run-{again}", seconds=900)
    assert _run_status(again) == "SUCCESS"
    # The kill may land after Dagster recorded the version (then FINISHED, the version kept) or
    # before (FAILED, every version it registered abandoned): never RUNNING, never undecided.
    ((killed_run, status),) = _mlflow_runs(run_id)
    recorded = kube.psql(
        f"select count(*) from event_logs where run_id = '{run_id}' and dagster_event_type = 'ASSET_MATERIALIZATION'",
        "dagster",
    ).stdout.strip()
    assert status == ("FINISHED" if recorded != "0" else "FAILED"), (status, recorded)
    versions = kube.psql(
        f"select version from model_versions where name = '{SERVED}' and run_id = '{killed_run}'", "mlflow"
    ).stdout.split()
    for version in versions if recorded == "0" else []:
        abandoned = kube.psql(
            f"select value from model_version_tags where name = '{SERVED}' and version = {version}"
            " and key = 'slipway.abandoned'",
            "mlflow",
        ).stdout.strip()
        assert abandoned, f"v{version} of the killed training is neither recorded nor abandoned"
    alias = kube.psql(
        f"select version from registered_model_aliases where name = '{SERVED}' and alias = 'champion'", "mlflow"
    ).stdout.strip()
    assert alias and (recorded != "0" or alias not in versions)


def _materializations(run_id: str, asset: str) -> list[tuple[str, str]]:
    """(partition, data version) of each materialization of ``asset`` (``clicks/events``) in run ``run_id``."""
    key = json.dumps(asset.split("/"))
    found = kube.psql(
        "select partition, event from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'"
        f" and run_id = '{run_id}' and asset_key = '{key}' order by id",
        "dagster",
    ).stdout
    rows = []
    for line in found.splitlines():
        partition, _, event = line.partition("|")
        version = re.search(r'"dagster/data_version": "([0-9a-f]+)"', event)
        rows.append((partition, version.group(1) if version else ""))
    return rows


def test_partitions_run_in_step_pods_a_range_of_seven_in_one_pod_each_recorded_alone(
    release: Release, launched: dict, tmp_path: Path
):
    """The release serves the partitioned example (env SLIPWAY_DEFS) for this test: a run over 7
    days of clicks/events (what `slipway backfill` launches with max_partitions_per_run) builds
    them in one step pod, each partition its own materialization and data version on Postgres and
    its own table on S3; a run of one more day builds it in a pod of its own.

    Only the sourced dataset: `dagster job launch -o` passes an op selection's derived datasets
    empty inputs (Slipway refuses them, tests/data/test_op_selection.py), and an asset selection
    cannot be launched from the command line. The release serves the example pipelines again after."""
    days = [f"2026-01-0{i}" for i in range(1, 9)]
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps({**release.values, "env": {"SLIPWAY_DEFS": "/app/examples/partitions/defs"}}))
    upgraded = kube.helm(
        "upgrade", RELEASE, CHART, "-n", release.namespace, "-f", values_file, "--wait", "--timeout", "5m"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        span = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[6]}
        ranged = launch(release, ops="clicks__events", tags=span)
        _wait_for_job(release, f"dagster-run-{ranged}", seconds=900)
        assert _run_status(ranged) == "SUCCESS"
        selector = f"dagster/run-id={ranged},app.kubernetes.io/component=step_worker"
        assert len(release.json("pods", "-l", selector)["items"]) == 1  # one step, seven partitions
        built = _materializations(ranged, "clicks/events")
        assert [p for p, _ in built] == days[:7]
        assert len({v for _, v in built}) == 7 and all(v for _, v in built), built  # each its own data version

        single = launch(release, ops="clicks__events", tags={"dagster/partition": days[7]})
        _wait_for_job(release, f"dagster-run-{single}", seconds=900)
        assert _run_status(single) == "SUCCESS"
        assert [p for p, _ in _materializations(single, "clicks/events")] == [days[7]]
        listing = subprocess.run(
            kube.in_ns("curl", "-sf", f"http://{kube.NODE_IP}:{kube.S3_PORT}/slipway?list-type=2&prefix=artifacts/clicks/"),
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        for day in days:
            run_id = single if day == days[7] else ranged
            assert f"<Key>artifacts/clicks/events/partition={day}/{run_id}.parquet</Key>" in listing, day
    finally:
        values_file.write_text(json.dumps(release.values))
        kube.helm("upgrade", RELEASE, CHART, "-n", release.namespace, "-f", values_file, "--wait", "--timeout", "5m")


def test_a_sweep_runs_each_trial_in_a_pod_of_its_own_with_the_models_resources(
    release: Release, launched: dict, tmp_path: Path
):
    """The release serves the sweep example (env SLIPWAY_DEFS) for this test: its dataset and model
    launched through Dagster's K8sRunLauncher run the dataset, each of the 6 trials and the winner's
    training in step pods of their own, each trial's with the model's resources, at most 2 trials at
    once (the pool's slots, set as the retrain sensor sets them); the release is put back after."""
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps({**release.values, "env": {"SLIPWAY_DEFS": "/app/examples/sweep/defs"}}))
    upgraded = kube.helm(
        "upgrade", RELEASE, CHART, "-n", release.namespace, "-f", values_file, "--wait", "--timeout", "5m"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    try:
        home = "/opt/dagster/dagster_home"
        password = {"secretKeyRef": {"name": "slipway-postgres", "key": "postgresql-password"}}
        pool = _job(
            release, "pool-sweep", "", release.values["image"]["repository"] + ":" + release.values["image"]["tag"],
            command=["dagster", "instance", "concurrency", "set", "slipway-sweep-tune.tree", "2"],
            env=[{"name": "DAGSTER_HOME", "value": home}, {"name": "DAGSTER_PG_PASSWORD", "valueFrom": password}],
            volumeMounts=[{"name": "instance", "mountPath": home}],
            service_account="launcher", volumes=[{"name": "instance", "configMap": {"name": "dagster-instance"}}],
        )  # fmt: skip
        assert pool["status"].get("succeeded") == 1, release.kubectl("logs", "job/pool-sweep", check=False).stdout
        run_id = launch(release, ops="tune__patients,tune__tree")
        _wait_for_job(release, f"dagster-run-{run_id}", seconds=900)
        assert _run_status(run_id) == "SUCCESS"
        selector = f"dagster/run-id={run_id},app.kubernetes.io/component=step_worker"
        pods = release.json("pods", "-l", selector)["items"]
        trials = [p for p in pods if ".trial_" in p["metadata"]["labels"]["dagster/op"]]
        assert len(trials) == 6 and len(pods) == 8, [p["metadata"]["labels"]["dagster/op"] for p in pods]
        for pod in trials:
            resources = pod["spec"]["containers"][0]["resources"]
            assert resources["requests"] == {"cpu": "500m", "memory": "512Mi"}, resources
        # Most trial steps under way at one time, as Dagster counts them (its pool's slot is taken
        # before a step starts and given back once it reports its end; a container may outlive that
        # by a second or two while its process exits).
        steps = kube.psql(
            "select timestamp, dagster_event_type from event_logs where run_id = "
            f"'{run_id}' and step_key like 'tune__tree.trial_%' and dagster_event_type in "
            "('STEP_START', 'STEP_SUCCESS', 'STEP_FAILURE') order by timestamp",
            "dagster",
        ).stdout.splitlines()
        alive = [0]
        for line in steps:
            alive.append(alive[-1] + (1 if line.endswith("|STEP_START") else -1))
        assert len(steps) == 12 and max(alive) <= 2, steps
        event = kube.psql(
            "select event from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'"
            f" and run_id = '{run_id}' and asset_key = '[\"tune\", \"tree\"]'",
            "dagster",
        ).stdout
        assert "6 trials: 6 trained, 0 cached, 0 failed" in event, event[:2000]
    finally:
        values_file.write_text(json.dumps(release.values))
        kube.helm("upgrade", RELEASE, CHART, "-n", release.namespace, "-f", values_file, "--wait", "--timeout", "5m")


def test_a_second_build_builds_nothing_and_a_second_start_keeps_the_running_cluster(cluster: dict):
    done = subprocess.run([str(HERE / "build.sh")], capture_output=True, text=True, check=True)
    assert "building" not in done.stderr and "fetching" not in done.stderr, done.stderr
    pids = kube.host_state()["processes"]
    kube.start()
    assert kube.host_state()["processes"] == pids  # the running cluster is reused, not restarted


def test_stop_leaves_the_host_as_it_was(cluster: dict):
    """Last in the file: stops the cluster (the session fixture's stop then finds nothing to do)."""
    kube.stop()
    assert kube.host_state() == cluster["host before"]
