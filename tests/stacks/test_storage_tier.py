"""The storage path of the Kubernetes stack, for real, without a cluster.

Dagster's instance on the machine's PostgreSQL, MLflow as a real ``mlflow server`` (backend store
on PostgreSQL, artifacts on S3), asset outputs on an S3 server (moto's server mode, a real S3
HTTP API), all on 127.0.0.1 and started here; the multiprocess executor stands in for pods (each
step a process of its own that loads the code location anew, as a step pod does). A second
machine is a fresh process with an empty ``SLIPWAY_HOME``: it sees the same record and reuses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow_server import MlflowServer, free_port
from services import S3_ENV, MotoServer, postgres_answers, query, scratch_databases
from summary_rows import rows

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SLIPWAY = str(Path(sys.executable).parent / "slipway")
BUCKET = "slipway-tier"
MODEL = "diabetes.progression_lgbm"
_K8S = yaml.safe_load((REPO / "stacks" / "k8s.yaml").read_text())["experiment_tracker"]
K8S_SERIALIZATION = f"serialization: {_K8S['serialization']}, skops_trusted_types: {_K8S['skops_trusted_types']}"


@dataclass
class Tier:
    """The services of one test, and a stack file that uses them."""

    tmp: Path
    moto: MotoServer
    mlflow: MlflowServer
    databases: dict[str, str]
    s3_url: str

    def stack(self, **changes: str) -> Path:
        """A stack file on these services (``changes``: a component's YAML by name)."""
        components = {
            "orchestrator": "{type: multiprocess, max_concurrent: 2}",
            "instance": (
                f"{{storage: postgres, hostname: 127.0.0.1, port: 5432, db_name: {self.databases['dagster']},"
                ' username: postgres, password_env: null, base_dir: "${SLIPWAY_HOME}/dagster"}'
            ),
            # The k8s stack's model format (skops, with the types it trusts).
            "experiment_tracker": f"{{type: mlflow_server, tracking_uri: '{self.mlflow.url}', {K8S_SERIALIZATION}}}",
            "model_registry": "{type: mlflow}",
            "artifact_store": (
                f"{{type: s3, bucket: {BUCKET}, prefix: artifacts, endpoint_url: '{self.s3_url}',"
                " attempts: 2, timeout_seconds: 2}"
            ),
            **changes,
        }
        path = self.tmp / "tier.yaml"
        path.write_text("".join(f"{key}: {value}\n" for key, value in components.items()))
        return path

    def run(self, home: Path, *args: str, env: dict[str, str] | None = None, stack: Path | None = None):
        full = {**os.environ, **S3_ENV, "SLIPWAY_HOME": str(home), **(env or {})}
        full.pop("SLIPWAY_STACK", None)
        command = [SLIPWAY, "--stack", str(stack or self.stack()), "run", *args]
        return subprocess.run(command, capture_output=True, text=True, env=full, cwd=REPO, timeout=600)

    def mlflow_rows(self, sql: str) -> list[tuple]:
        return query(self.databases["mlflow"], sql)

    def dagster_rows(self, sql: str) -> list[tuple]:
        return query(self.databases["dagster"], sql)


@pytest.fixture
def tier(tmp_path: Path):
    if not postgres_answers():
        pytest.fail("PostgreSQL does not answer on 127.0.0.1:5432 (`.ci/run` starts it)")
    moto = MotoServer(tmp_path / "moto")
    moto.start()
    try:
        moto.client().create_bucket(Bucket=BUCKET)
        with scratch_databases("dagster", "mlflow") as databases:
            mlflow = MlflowServer(
                tmp_path / "mlflow",
                backend=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{databases['mlflow']}",
                artifacts=f"s3://{BUCKET}/mlflow",
                env={**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": moto.url},
            )
            mlflow.start()
            try:
                yield Tier(tmp_path, moto, mlflow, databases, moto.url)
            finally:
                mlflow.stop()
    finally:
        moto.stop()


def test_a_pipeline_lands_in_postgres_the_mlflow_server_and_s3_and_a_second_machine_reuses_it(tier):
    first = tier.run(tier.tmp / "machine-a", "diabetes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 built" in first.stdout, first.stdout

    # Dagster's record is in PostgreSQL: the run, and a materialization per asset.
    assert tier.dagster_rows("select status from runs") == [("SUCCESS",)]
    materialized = tier.dagster_rows(
        "select asset_key from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION' order by asset_key"
    )
    assert materialized == [('["diabetes", "patients"]',), ('["diabetes", "progression_lgbm"]',)]
    # Each step ran in a process of its own (the pods' stand-in).
    workers = tier.dagster_rows("select count(*) from event_logs where dagster_event_type = 'STEP_WORKER_STARTED'")
    assert workers == [(2,)]

    # MLflow's record is the server's, on PostgreSQL: a finished run, a version, the champion alias.
    assert tier.mlflow_rows("select status from runs") == [("FINISHED",)]
    assert tier.mlflow_rows("select name, version from model_versions") == [(MODEL, 1)]
    assert tier.mlflow_rows("select alias, version from registered_model_aliases") == [("champion", 1)]

    # Artifacts are on S3: the dataset's table and the model reference under the stack's prefix,
    # the model's files under the MLflow server's destination.
    keys = tier.moto.keys(BUCKET)
    assert any(k.startswith("artifacts/diabetes/patients/") and k.endswith(".parquet") for k in keys), keys
    assert not [k for k in keys if k.endswith("/LATEST")], keys  # which version is current is the record's
    assert any(k.startswith("artifacts/diabetes/progression_lgbm/") and k.endswith(".json") for k in keys), keys
    assert any(k.startswith("mlflow/") and k.endswith("/MLmodel") for k in keys), keys
    # ... and nothing of it on this machine's disk.
    local = [p.name for p in (tier.tmp / "machine-a").rglob("*") if p.is_file()]
    assert not [n for n in local if n.endswith((".parquet", ".db", ".pkl", "MLmodel"))], local

    # A second machine: a fresh process, an empty SLIPWAY_HOME, the same services.
    second = tier.run(tier.tmp / "machine-b", "diabetes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 reused" in second.stdout, second.stdout
    assert tier.dagster_rows("select count(*) from runs") == [(1,)]  # nothing launched
    assert tier.mlflow_rows("select count(*) from model_versions") == [(1,)]


def test_on_a_k8s_job_stack_slipway_run_only_reads_the_deployment_s_record(tier):
    """The deployment launches its runs (k8s_job): `slipway run` says what is current and what it
    would build, and writes nothing to the deployment's record (not even its tables) or registry."""
    deployed = tier.tmp / "deployed.yaml"  # its own file: tier.stack() rewrites tier.yaml
    deployed.write_text(tier.stack(orchestrator="{type: k8s_job}").read_text())
    tables = "select count(*) from information_schema.tables where table_schema = 'public'"
    empty = tier.run(tier.tmp / "laptop", "diabetes", stack=deployed)
    assert empty.returncode == 1
    assert empty.stderr.strip().endswith("no Dagster tables there: nothing has run on this deployment yet"), (
        empty.stderr
    )
    assert tier.dagster_rows(tables) == [(0,)]

    # Once the deployment has built diabetes (here: the same services, with a launcher that runs):
    assert tier.run(tier.tmp / "deployment", "diabetes").returncode == 0
    counts = "select (select count(*) from runs), (select count(*) from event_logs), (select count(*) from kvs)"
    before, versions = tier.dagster_rows(counts), tier.mlflow_rows("select count(*) from model_versions")
    after = tier.run(tier.tmp / "laptop", "diabetes", stack=deployed)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "2 reused" in after.stdout, after.stdout
    # A change the deployment has not built yet (a param, in this checkout) is named, not launched.
    changed = tier.tmp / "defs"
    shutil.copytree(REPO / "definitions" / "defs", changed)
    model = changed / "diabetes" / "defs.yaml"
    model.write_text(model.read_text().replace("num_leaves: 15", "num_leaves: 16"))
    other = tier.run(tier.tmp / "laptop", "diabetes", stack=deployed, env={"SLIPWAY_DEFS": str(changed)})
    assert other.returncode == 1
    assert other.stderr.strip().endswith(
        "1 asset(s) need building (diabetes/progression_lgbm); `slipway run` does not launch"
        " on k8s_job: runs go through the Dagster deployment (its UI, sensors, or `dagster job launch`)"
    ), other.stderr
    forced = tier.run(tier.tmp / "laptop", "diabetes", "--force", stack=deployed)
    assert forced.returncode == 1 and "--force launches a run" in forced.stderr, forced.stderr
    assert tier.dagster_rows(counts) == before  # no run, event, observation or cursor written
    assert tier.mlflow_rows("select count(*) from model_versions") == versions


def test_an_unreachable_s3_endpoint_fails_the_run_naming_it_after_bounded_retries(tier):
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = tier.run(
        tier.tmp / "home",
        "diabetes",
        stack=tier.stack(
            artifact_store=f"{{type: s3, bucket: {BUCKET}, endpoint_url: '{dead}', attempts: 2, timeout_seconds: 1}}"
        ),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    said = " ".join(rows(done.stdout))  # the summary's details wrap
    assert f"artifact store (s3): {dead}, bucket {BUCKET}: cannot write (no answer after 2 attempts)" in said
    assert "Traceback" not in done.stdout + done.stderr
    assert time.monotonic() - started < 120
    # The model never trained: nothing registered.
    assert tier.mlflow_rows("select count(*) from model_versions") == [(0,)]


def test_an_unreachable_mlflow_server_fails_the_run_naming_it_never_its_password(tier):
    from resources.mlflow_client import retry_budget

    port = free_port()
    # A password where a careless user puts one: in the URL (the `mlflow` type takes any URI).
    started = time.monotonic()
    done = tier.run(
        tier.tmp / "home",
        "diabetes",
        stack=tier.stack(
            experiment_tracker=f"{{type: mlflow, tracking_uri: 'http://ml:hunter2-secret@127.0.0.1:{port}'}}"
        ),
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"http://ml:***@127.0.0.1:{port}" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "hunter2-secret" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    # Bounded: MLflow's retries as Slipway sets them, plus the start of the command.
    assert elapsed < retry_budget()[1] + 60, elapsed
    # Nothing reached the real server.
    assert tier.mlflow_rows("select count(*) from model_versions") == [(0,)]


def test_an_unreachable_postgres_fails_naming_the_endpoint_never_the_password(tier):
    port = free_port()
    started = time.monotonic()
    done = tier.run(
        tier.tmp / "home",
        "diabetes",
        env={"TIER_PG_PASSWORD": "hunter2-secret"},
        stack=tier.stack(
            instance=f"{{storage: postgres, hostname: 127.0.0.1, port: {port}, db_name: dagster, username: slipway,"
            " password_env: TIER_PG_PASSWORD}"
        ),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"postgresql://slipway@127.0.0.1:{port}/dagster" in done.stderr, done.stderr
    assert "hunter2-secret" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60  # dagster-postgres tries 6 times, 0.2 s apart


def test_s3_going_down_after_the_model_registered_leaves_no_half_registered_version(tier):
    # The artifact store is reached through a proxy the training kills right after the model
    # version is registered: the model's output cannot be stored, the step fails.
    port = free_port()
    proxy = [sys.executable, str(REPO / "tests" / "tcp_proxy.py"), str(port), str(tier.moto.port)]

    def start_proxy() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(proxy, start_new_session=True)
        time.sleep(0.5)
        return process

    tier.s3_url = f"http://127.0.0.1:{port}"
    # In process: the kill point is set in the `slipway` process, where the training runs then.
    stack = tier.stack(orchestrator="{type: in_process}")
    first_proxy = start_proxy()
    try:
        built = tier.run(tier.tmp / "home", "diabetes", stack=stack)
        assert built.returncode == 0, built.stdout + built.stderr  # v1 is champion
        killer = [sys.executable, str(REPO / "tests" / "killpoints.py"), "server-down-after-registered"]
        env = {**os.environ, **S3_ENV, "SLIPWAY_HOME": str(tier.tmp / "home"), "KILL_SERVER_PGID": str(first_proxy.pid)}
        env.pop("SLIPWAY_STACK", None)
        failed = subprocess.run(
            [*killer, "--stack", str(stack), "run", "diabetes", "--force"],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=600,
        )
    finally:
        if first_proxy.poll() is None:
            os.killpg(first_proxy.pid, signal.SIGKILL)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"artifact store (s3): {tier.s3_url}, bucket {BUCKET}" in failed.stdout, failed.stdout
    # Version 2 was registered, then its output could not be stored: it is abandoned, the
    # champion stays on version 1, and its MLflow run is closed as failed.
    assert tier.mlflow_rows("select alias, version from registered_model_aliases") == [("champion", 1)]
    tags = tier.mlflow_rows("select version, key from model_version_tags where key = 'slipway.abandoned'")
    assert tags == [(2, "slipway.abandoned")]
    assert sorted(tier.mlflow_rows("select status from runs")) == [("FAILED",), ("FINISHED",)]

    # The endpoint comes back: version 1 is still what the record says was built, and is reused.
    second_proxy = start_proxy()
    try:
        again = tier.run(tier.tmp / "home", "diabetes", stack=stack)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "2 reused" in again.stdout, again.stdout
        assert tier.mlflow_rows("select alias, version from registered_model_aliases") == [("champion", 1)]
    finally:
        os.killpg(second_proxy.pid, signal.SIGKILL)


def test_two_machines_at_once_on_the_shared_record_leave_each_other_s_run_alone(tier):
    full = {**os.environ, **S3_ENV, "SLIPWAY_HOME": str(tier.tmp / "machine-a")}
    full.pop("SLIPWAY_STACK", None)
    first = subprocess.Popen(
        [SLIPWAY, "--stack", str(tier.stack()), "run", "diabetes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full,
        cwd=REPO,
    )
    try:
        for _ in range(600):  # until machine A's run is under way
            started = (
                tier.dagster_rows(
                    "select count(*) from information_schema.tables t join runs r on t.table_name = 'runs'"
                    " where r.status = 'STARTED'"
                )
                if tier.dagster_rows("select to_regclass('runs') is not null") == [(True,)]
                else [(0,)]
            )
            if started == [(1,)]:
                break
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.1)
        second = tier.run(tier.tmp / "machine-b", "diabetes")
        out_a = first.communicate(timeout=600)[0]
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out_a
    # Machine B holds its assets back while A's run is going (and says so).
    assert "held back: a run of it is in progress" in " ".join(rows(second.stdout)), second.stdout
    # Machine B did not take machine A's run for a dead one of its own.
    statuses = tier.dagster_rows("select status from runs")
    assert ("FAILURE",) not in statuses, (statuses, second.stdout)
    assert "2 built" in out_a, out_a
    # One training: B waited for A's instead of training the same model beside it.
    assert tier.mlflow_rows("select count(*) from model_versions") == [(1,)], second.stdout


def test_partitions_are_built_in_step_processes_stored_on_s3_and_reused_by_a_second_machine(tier):
    defs = str(REPO / "examples" / "partitions" / "defs")
    first = tier.run(tier.tmp / "machine-a", "--defs", defs)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "4 built" in first.stdout, first.stdout
    # Up to 7 days a run (max_partitions_per_run): two runs of each of the three datasets, then the
    # model's; each step a process of its own, recording each of its 7 partitions alone.
    assert tier.dagster_rows("select count(*) from runs where status = 'SUCCESS'") == [(7,)]
    workers = tier.dagster_rows("select count(*) from event_logs where dagster_event_type = 'STEP_WORKER_STARTED'")
    assert workers == [(7,)]
    versions = tier.dagster_rows(
        "select count(distinct run_id), count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'"
        ' and asset_key = \'["clicks", "weekly"]\''
    )
    assert versions == [(2, 14)]  # a materialization per partition, from two runs
    partitions = tier.dagster_rows(
        "select count(distinct partition) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'"
        ' and asset_key = \'["clicks", "events"]\''
    )
    assert partitions == [(14,)]
    keys = tier.moto.keys(BUCKET)
    for day in ("2026-01-01", "2026-01-14"):
        for name in ("events", "sessions", "weekly"):
            prefix = f"artifacts/clicks/{name}/partition={day}/"
            assert any(k.startswith(prefix) and k.endswith(".parquet") for k in keys), (prefix, keys)

    second = tier.run(tier.tmp / "machine-b", "--defs", defs)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "4 reused" in second.stdout, second.stdout
    assert tier.dagster_rows("select count(*) from runs") == [(7,)]  # nothing launched
