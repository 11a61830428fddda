"""`slipway dev` serves both UIs, links to the MLflow UI it serves, and stops all it started."""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from definitions.cli.dev import UI_URL_VAR, choose_mlflow_port, link_target
from definitions.cli.processes import parents
from resources.errors import StackError
from stacks import load_stack

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SLIPWAY = str(Path(sys.executable).parent / "slipway")
MARKER = "DEV_TEST_MARKER"  # inherited by every process `slipway dev` starts


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


def _marked(marker: str) -> dict[int, str]:
    """Live processes whose environment holds ``MARKER=marker``, with their command lines."""
    needle = f"{MARKER}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile, or a zombie
            continue
    return found


def _kill_marked(marker: str) -> dict[int, str]:
    """SIGKILL what is left of the processes a test started; return what was left."""
    left = _marked(marker)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _start_dev(log: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    # SIGINT ignored, as a background job of a script (or a test runner) starts it: the
    # condition in which `slipway dev` ignored Ctrl-C and `dagster dev` ignored SIGTERM.
    ignore_sigint = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", ignore_sigint, SLIPWAY, "dev", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> float:
    """Send ``sig``; return the seconds until `slipway dev` exited, after checking it exited 0."""
    started = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 0
    return time.monotonic() - started


def _repeated_warnings(output: str) -> dict[str, int]:
    """Warning lines printed more than once, timestamps and colours left out.

    A traceback's frame lines are not warnings, even in a function named ``warned`` (SQLAlchemy's):
    a run interrupted by the Ctrl-C mid-training prints one.
    """
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in output.splitlines()]
    lines = [re.sub(r"^\d{4}[-/]\d\d[-/]\d\d \d\d:\d\d:\d\d( \+\d{4})?", "", line).strip() for line in lines]
    counts = collections.Counter(line for line in lines if "warn" in line.lower() and not line.startswith('File "'))
    return {line: n for line, n in counts.items() if n > 1}


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


ASSETS = """
{
  assetNodes { assetKey { path } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } }
  assetOrError(assetKey: {path: ["houses", "price_model"]}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
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
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _latest_model_materialization(port: int) -> tuple[dict, dict]:
    data = _graphql(port, ASSETS)
    latest = data["assetOrError"]["assetMaterializations"][0]
    metadata = {
        e["label"]: e.get("url") or e.get("intValue") or e.get("floatValue") or e.get("text")
        for e in latest["metadataEntries"]
    }
    return data, {"run_id": latest["runId"], **metadata}


def _follow_mlflow_link(link: str) -> dict:
    """Open an ``mlflow_run`` link: the UI page answers, and the run it names is served there."""
    parts = urlsplit(link)
    # The UI routes on the fragment, which may carry a query of its own (?workflowType=...).
    match = re.fullmatch(r"/experiments/(\d+)/runs/(\w+)", parts.fragment.partition("?")[0])
    assert match, link
    assert _wait_http(link, 30) == 200
    base = f"{parts.scheme}://{parts.netloc}"
    with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={match[2]}", timeout=30) as response:
        run = json.loads(response.read())["run"]
    assert run["info"]["experiment_id"] == match[1]
    return run


def _launch_from_ui(port: int, location: str, asset: list[str]) -> None:
    selector = {
        "repositoryLocationName": location,
        "repositoryName": "__repository__",
        "jobName": "__ASSET_JOB",
        "assetSelection": [{"path": asset}],
    }
    launched = _graphql(port, LAUNCH, {"params": {"selector": selector, "runConfigData": {}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 180
    while (status := _graphql(port, STATUS, {"id": run_id})["runOrError"]["status"]) not in ("SUCCESS", "FAILURE"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(0.5)
    assert status == "SUCCESS"


@pytest.mark.slow
def test_dev_links_to_the_mlflow_ui_it_serves_and_stops_everything_on_ctrl_c(home, tmp_path):
    dagster_port, mlflow_port = _free_port(), _free_port()
    served = f"127.0.0.1:{mlflow_port}"
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    # The run before the UI starts records its links to the MLflow UI this test serves.
    built = subprocess.run(
        [SLIPWAY, "run", "houses"],
        cwd=REPO,
        env={**env, UI_URL_VAR: f"http://{served}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    marker, log = uuid.uuid4().hex, tmp_path / "dev.log"
    proc = _start_dev(log, {**env, MARKER: marker}, "--port", str(dagster_port), "--mlflow-port", str(mlflow_port))
    try:
        assert _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120) == 200
        assert _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180) == 200
        running = _marked(marker)
        assert proc.pid in running and len(running) >= 5, running  # the scan sees what dev started

        # The UI shows every example asset; the model's materialization links to MLflow...
        data, metadata = _latest_model_materialization(dagster_port)
        keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
        assert {"churn/customers", "churn/churn_classifier", "houses/price_model", "diabetes/progression_lgbm"} <= keys
        assert metadata["model_version"] == 1 and metadata["alias"] == "champion"
        assert isinstance(metadata["metric_r2"], float)
        # ...on the MLflow UI served here, which has the run.
        assert urlsplit(metadata["mlflow_run"]).netloc == served
        assert urlsplit(metadata["mlflow_run"]).fragment.endswith("?workflowType=machine_learning")
        assert _follow_mlflow_link(metadata["mlflow_run"])["info"]["status"] == "FINISHED"

        # A run launched from the UI links to the MLflow UI served beside it, not the stack's
        # ui_url (port 5000); dev said so when it started.
        location = data["repositoriesOrError"]["nodes"][0]["location"]["name"]
        _launch_from_ui(dagster_port, location, ["houses", "price_model"])
        _, relaunched = _latest_model_materialization(dagster_port)
        assert relaunched["run_id"] != metadata["run_id"]
        assert urlsplit(relaunched["mlflow_run"]).netloc == served
        assert _follow_mlflow_link(relaunched["mlflow_run"])["info"]["status"] == "FINISHED"

        assert _stop(proc, signal.SIGINT) < 10
    finally:
        left = _kill_marked(marker)
    output = log.read_text()
    assert not left, f"still running after Ctrl-C: {left}"
    for port in (dagster_port, mlflow_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after Ctrl-C"
    notice = f"MLflow UI on port {mlflow_port}: materializations recorded earlier link to http://127.0.0.1:5000"
    assert output.count(notice) == 1, output
    assert not _repeated_warnings(output), output


@pytest.mark.slow
def test_dev_stops_everything_it_started_on_sigterm(home, tmp_path):
    dagster_port, mlflow_port = _free_port(), _free_port()
    marker, log = uuid.uuid4().hex, tmp_path / "dev.log"
    env = {**os.environ, "SLIPWAY_HOME": str(home), MARKER: marker}
    proc = _start_dev(log, env, "--port", str(dagster_port), "--mlflow-port", str(mlflow_port))
    try:
        assert _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120) == 200
        assert _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180) == 200
        # MLflow's job runner (huey consumers: the workers that once outlived dev) is off: it starts
        # with the server, before /health answers, and it is not there.
        started = _marked(marker).values()
        assert any(" server " in f" {command} " and "mlflow" in command for command in started), started
        assert not any("huey" in command or "_job_runner" in command for command in started), started
        assert _stop(proc, signal.SIGTERM) < 10
    finally:
        left = _kill_marked(marker)
    assert not left, f"still running after SIGTERM: {left}\n{log.read_text()}"


ORPHANS = r"""
import json, os, subprocess, sys, time
from definitions.cli.processes import become_subreaper, parents, stop_all

assert become_subreaper()
ready = sys.argv[1]
worker = (
    "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    f"open({ready!r}, 'w').write(str(os.getpid())); time.sleep(600)"
)
plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
# A worker that ignores SIGTERM, started by a parent that left the process group and exited:
# an orphan outside every group this process knows of.
escaper = "import os, subprocess, sys; os.setsid(); subprocess.Popen([sys.executable, '-c', sys.argv[1]])"
subprocess.run([sys.executable, "-c", escaper, worker], check=True)
while not os.path.exists(ready) or not open(ready).read():
    time.sleep(0.05)
orphan = int(open(ready).read())
adopted = parents().get(orphan) == os.getpid()
started = time.monotonic()
count = stop_all(grace=1.0)
print(json.dumps({"adopted": adopted, "count": count, "seconds": time.monotonic() - started, "orphan": orphan}))
"""


def test_stop_all_stops_adopted_orphans_that_ignore_sigterm(tmp_path):
    marker = uuid.uuid4().hex
    try:
        done = subprocess.run(
            [sys.executable, "-c", ORPHANS, str(tmp_path / "ready")],
            cwd=REPO,
            env={**os.environ, MARKER: marker},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        left = _kill_marked(marker)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["adopted"], "the orphan was not re-parented to the subreaper"
    assert result["count"] == 2  # the plain child and the adopted orphan
    assert 1.0 <= result["seconds"] < 3, "SIGKILL follows SIGTERM after the grace period"
    assert not left, left


def test_process_table_from_ps_agrees_with_proc():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert parents(use_proc=True)[child.pid] == os.getpid()
        assert parents(use_proc=False)[child.pid] == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_mlflow_port_defaults_to_the_port_of_the_stack_ui_url(home, monkeypatch):
    assert choose_mlflow_port(load_stack()) == 5000
    assert choose_mlflow_port(load_stack(), 5123) == 5123
    monkeypatch.setenv(UI_URL_VAR, "http://127.0.0.1:5077")
    assert choose_mlflow_port(load_stack()) == 5077
    monkeypatch.setenv(UI_URL_VAR, "http://127.0.0.1:port")
    with pytest.raises(StackError, match=re.escape("stack local: experiment_tracker.ui_url 'http://127.0.0.1:port'")):
        choose_mlflow_port(load_stack())


def test_runs_link_to_the_served_mlflow_ui_unless_the_user_set_ui_url(home, monkeypatch):
    # The stack's own ui_url: dev's children link to what it serves, with a notice if it moved.
    assert link_target(load_stack(), 5000) == ({UI_URL_VAR: "http://127.0.0.1:5000"}, None)
    assert link_target(load_stack(), 5001) == (
        {UI_URL_VAR: "http://127.0.0.1:5001"},
        "MLflow UI on port 5001: materializations recorded earlier link to http://127.0.0.1:5000",
    )
    # Set by the user (an MLflow UI behind a proxy, say): theirs is inherited and wins.
    monkeypatch.setenv(UI_URL_VAR, "https://mlflow.example/ui")
    assert link_target(load_stack(), 5001) == (
        {},
        f"runs launched from the Dagster UI link to https://mlflow.example/ui (env {UI_URL_VAR}),"
        " not to http://127.0.0.1:5001",
    )
    monkeypatch.setenv(UI_URL_VAR, "http://localhost:5001")
    assert link_target(load_stack(), 5001) == ({}, None)


def _mlflow_ui_bundle() -> str:
    spec = importlib.util.find_spec("mlflow")
    assert spec and spec.submodule_search_locations
    js = Path(spec.submodule_search_locations[0], "server", "js", "build", "static", "js")
    return "".join(path.read_text() for path in js.glob("main.*.js"))


def test_experiments_carry_the_model_training_kind_the_mlflow_ui_reads(tmp_path):
    # MLflow 3.17.2's UI bundle, mlflow/server/js/build/static/js/main.*.js, declares the kinds
    # in one enum (`e.GENAI_DEVELOPMENT="genai_development",e.CUSTOM_MODEL_DEVELOPMENT=...`) and
    # reads the tag in its experiment-kind hook: `tags.find(e => "mlflow.experimentKind" === e.key)`.
    bundle = _mlflow_ui_bundle()
    enum = re.search(r'e\.GENAI_DEVELOPMENT="genai_development",[^}]*', bundle)
    assert enum, "MLflow's UI no longer declares ExperimentKind as it did in 3.17.2"
    kinds = dict(re.findall(r'e\.(\w+)="(\w*)"', enum[0]))
    assert 'find(e=>"mlflow.experimentKind"===e.key)' in bundle
    # That hook returns the kind of the workflow type instead while a feature flag is on, and
    # 3.17.2 ships it on: the view follows the link's ?workflowType= (genai | machine_learning).
    assert 'e.MACHINE_LEARNING="machine_learning"' in bundle and '.get("workflowType")' in bundle

    from mlflow import MlflowClient

    from resources.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(tracking_uri=uri)
    created = tracker.start_run("houses", "r1", {})
    # An experiment made before Slipway tagged it (or by plain MLflow) gets the kind too.
    untagged = MlflowClient(uri).create_experiment("churn")
    assert tracker.start_run("churn", "r2", {}).experiment_id == untagged
    client = MlflowClient(uri)
    for experiment_id in (created.experiment_id, untagged):
        assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == kinds["CUSTOM_MODEL_DEVELOPMENT"]
