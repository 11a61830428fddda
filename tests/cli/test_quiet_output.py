"""`slipway run` and `slipway dev` print no warning a user cannot act on, and no colour codes off a terminal.

The warnings named here are the ones a first hour with Slipway printed: MLflow's integer-schema
hint, Starlette's deprecation of the WSGI middleware MLflow's server imports, urllib3's SOCKS
notice and Dagster's BetaWarnings for the beta APIs Dagster and Slipway use on purpose. Each
library silences some of them itself, with filters that another thread's
``warnings.catch_warnings()`` can drop; the transform below emits them as their libraries do
after such a drop. A warning raised by the user's own code is always shown.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from test_cli import REPO, SLIPWAY
from test_dev import MARKER, _free_port, _graphql, _kill_marked, _launch_from_ui, _marked, _wait_http

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

PIPELINE = """
type: assets.Pipeline
attributes:
  name: ints
  datasets:
    rows: {source: {generator: churn, rows: 500, seed: 0}}
    noisy:
      inputs: [rows]
      transform: noisy:passthrough
  models:
    clf:
      dataset: noisy
      target: churned
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3}
      metrics: [accuracy]
"""

# (category, the module its library attributes it to, its text), as each library raises it.
THIRD_PARTY = """
import warnings
from urllib3.exceptions import DependencyWarning
from starlette.exceptions import StarletteDeprecationWarning
from dagster import BetaWarning

THIRD_PARTY = [
    (UserWarning, "mlflow.types.utils", "Hint: Inferred schema contains integer column(s). Integer columns in Python cannot represent missing values."),
    (StarletteDeprecationWarning, "mlflow.server.fastapi_app", "starlette.middleware.wsgi is deprecated and will be removed in a future release."),
    (DependencyWarning, "urllib3.contrib.socks", "SOCKS support in urllib3 requires the installation of optional dependencies: specifically, PySocks."),
    (BetaWarning, "assets.data.outputs", "Parameter `data_version` of initializer `Output.__init__` is currently in beta, and may have breaking changes."),
    (BetaWarning, "assets.automation.sensors", "Parameter `use_user_code_server` of initializer `AutomationConditionSensorDefinition.__init__` is currently in beta."),
    (BetaWarning, "assets.automation.sensors", "Parameter `include_sources` of function `AssetSelection.all` is currently in beta."),
    (BetaWarning, "dagster.components.component.component", "Class `LocalFileCodeReference` is currently in beta."),
    (BetaWarning, "dagster.components.core.defs_module", "Class `CodeReferencesMetadataValue` is currently in beta."),
    (BetaWarning, "dagster._core.definitions.assets.definition.assets_definition", "Parameter `execution_type` of function `AssetsDefinition.__init__` is currently in beta."),
]


def emit(who):
    for category, module, text in THIRD_PARTY:
        path = module.replace(".", "/") + ".py"
        warnings.warn_explicit(text, category, path, 1, module=module, registry={})
    # The user's own: a warning of theirs, and a beta API they chose to call.
    warnings.warn(f"{who}: 3 rows have no tenure and are dropped")
    import dagster as dg
    dg.AssetSelection.all(include_sources=True)
"""

NOISY = (
    THIRD_PARTY
    + '''
import subprocess, sys


def passthrough(rows):
    """Emit every warning here and in a process started from here (it inherits the environment)."""
    emit("transform")
    child = "import sys; sys.path.insert(0, %r); import noisy; noisy.emit('child')" % __file__.rsplit("/", 1)[0]
    subprocess.run([sys.executable, "-c", child], check=True)
    return rows
'''
)

WARNING_LINE = re.compile(r"\b\w*Warning: ")
ESCAPE = "\x1b"


def _env(home: Path, project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_") and k != "NO_COLOR"}
    env |= {"SLIPWAY_HOME": str(home), "PYTHONPATH": str(project)}
    env["SLIPWAY_ALLOWED_IMPORTS"] = '["sklearn", "noisy"]'
    return env


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if WARNING_LINE.search(line)]


@pytest.mark.slow
def test_run_and_dev_print_no_third_party_warning_and_no_colour_into_a_pipe(tmp_path, write_pipeline, defs_dir):
    write_pipeline("ints", PIPELINE)
    (tmp_path / "noisy.py").write_text(NOISY)
    env = _env(tmp_path / "home", tmp_path)

    ran = subprocess.run(
        [SLIPWAY, "--defs", str(defs_dir), "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # The user's warnings are shown, from the step and from the process it started; nothing else.
    shown = _warnings(ran.stderr)
    assert len(shown) == 4, ran.stderr
    assert sum("transform: 3 rows have no tenure" in line for line in shown) == 1, ran.stderr
    assert sum("child: 3 rows have no tenure" in line for line in shown) == 1, ran.stderr
    assert sum("BetaWarning: Parameter `include_sources`" in line for line in shown) == 2, ran.stderr
    assert ESCAPE not in ran.stdout + ran.stderr

    # The UI relaunches the model: MLflow's hint comes from Dagster's run worker, Starlette's
    # deprecation from MLflow's server; Dagster's and MLflow's log lines carry colours.
    dagster_port, mlflow_port = _free_port(), _free_port()
    marker, log = uuid.uuid4().hex, tmp_path / "dev.log"
    args = ["--defs", str(defs_dir), "dev", "--port", str(dagster_port), "--mlflow-port", str(mlflow_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SLIPWAY, *args], cwd=REPO, env={**env, MARKER: marker}, stdout=out, stderr=out, start_new_session=True
        )
    try:
        assert _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120) == 200
        assert _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180) == 200
        location = _graphql(
            dagster_port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } } } } }"
        )
        _launch_from_ui(dagster_port, location["repositoriesOrError"]["nodes"][0]["location"]["name"], ["ints", "clf"])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        left = _kill_marked(marker)
    output = log.read_text()
    assert not left, left
    assert "Serving dagster-webserver on" in output and "Uvicorn running on" in output, output  # still relayed
    assert "ints.clf v2" in output, output  # the run worker's lines too
    assert _warnings(output) == [], output
    assert ESCAPE not in output, [line for line in output.splitlines() if ESCAPE in line][:5]


@pytest.mark.slow
def test_dev_on_a_terminal_prints_no_colour_codes_when_no_color_is_set(tmp_path, home):
    dagster_port, mlflow_port = _free_port(), _free_port()
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env |= {"SLIPWAY_HOME": str(home), "NO_COLOR": "1", MARKER: marker}
    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        [SLIPWAY, "dev", "--port", str(dagster_port), "--mlflow-port", str(mlflow_port)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    output = bytearray()

    def read() -> None:  # a terminal that is not read fills up and blocks its writers
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # every writer has closed it
                return
            if not chunk:
                return
            output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while b"Serving dagster-webserver on" not in output:
            assert proc.poll() is None and time.monotonic() < deadline, output.decode(errors="replace")
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        left = _kill_marked(marker)
        reader.join(timeout=10)
        os.close(main)
    text = output.decode(errors="replace")
    assert not left, left
    assert "Dagster UI: http://127.0.0.1:" in text and "dagster.daemon" in text, text
    assert ESCAPE not in text, [line for line in text.splitlines() if ESCAPE in line][:5]


@pytest.mark.slow
def test_ctrl_c_on_dev_piped_into_a_reader_stops_every_server(tmp_path, home):
    # `slipway dev 2>&1 | cat` in a terminal: Ctrl-C interrupts the whole pipeline, so the reader
    # is gone before dev says it is stopping; dev must still stop what it started.
    dagster_port, mlflow_port = _free_port(), _free_port()
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env |= {"SLIPWAY_HOME": str(home), MARKER: marker}
    pipeline = f"{SLIPWAY} dev --port {dagster_port} --mlflow-port {mlflow_port} 2>&1 | cat > {tmp_path / 'dev.log'}"
    shell = subprocess.Popen(["bash", "-c", pipeline], cwd=REPO, env=env, start_new_session=True)
    try:
        assert _wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120) == 200
        assert _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", 180) == 200
        os.killpg(shell.pid, signal.SIGINT)  # what a terminal sends its foreground job on Ctrl-C
        shell.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _marked(marker) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        left = _kill_marked(marker)
    assert not left, f"still running after Ctrl-C: {[command[:100] for command in left.values()]}"
