"""End-to-end: the `slipway` console script in a subprocess, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

SLIPWAY = str(Path(sys.executable).parent / "slipway")

BAD_ESTIMATOR = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
  models:
    clf:
      dataset: orders
      target: y
      estimator: sklearn.ensemble.RandomForestClasifier
      metrics: [accuracy]
"""


ORDERS = {"data/orders.csv": pd.DataFrame({"y": [0, 1]})}  # validate checks the data file and its header


def slipway(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "SLIPWAY_HOME": str(home), **(env or {})}
    full_env.pop("SLIPWAY_STACK", None)
    return subprocess.run([SLIPWAY, *args], capture_output=True, text=True, env=full_env, cwd=REPO, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {expected}"], result.stderr


def test_validate_examples(home):
    result = slipway("validate", home=home)
    assert result.returncode == 0, result.stderr
    assert "pipeline churn: ok" in result.stdout and "pipeline houses: ok" in result.stdout


def test_validate_misspelled_estimator(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", BAD_ESTIMATOR, ORDERS)
    result = slipway("--defs", str(defs_dir), "validate", home=home)
    assert_one_line_error(
        result,
        f"{path}:11: pipeline shop: sklearn.ensemble has no 'RandomForestClasifier'; did you mean 'RandomForestClassifier'?",
    )
    verbose = slipway("--verbose", "--defs", str(defs_dir), "validate", home=home)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_validate_import_outside_allow_list(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", BAD_ESTIMATOR.replace("sklearn.ensemble.RandomForestClasifier", "subprocess:Popen"))
    result = slipway("--defs", str(defs_dir), "validate", home=home)
    assert_one_line_error(
        result,
        f"{path}:11: pipeline shop: import path 'subprocess:Popen' is outside the stack's allow-list "
        "(sklearn, xgboost, lightgbm, definitions); add its package to `allowed_imports` in the stack",
    )


def test_validate_malformed_yaml_and_unknown_expectation(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", BAD_ESTIMATOR.replace("  models:", "  models: {"))
    result = slipway("--defs", str(defs_dir), "validate", home=home)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {path}:9: malformed YAML: expected ',' or '}}', but got ':'" in result.stderr

    text = BAD_ESTIMATOR.replace("RandomForestClasifier", "RandomForestClassifier").replace(
        "      source: {path: data/orders.csv}",
        "      source: {path: data/orders.csv}\n      expectations:\n        - {expect: column_values_to_not_be_nul, column: y}",
    )
    path = write_pipeline("shop", text, ORDERS)
    result = slipway("--defs", str(defs_dir), "validate", home=home)
    assert_one_line_error(
        result,
        f"{path}:8: pipeline shop: unknown expectation 'column_values_to_not_be_nul'; did you mean 'column_values_to_not_be_null'?",
    )


def test_validate_expectation_arguments(home, write_pipeline, defs_dir):
    text = BAD_ESTIMATOR.replace("RandomForestClasifier", "RandomForestClassifier").replace(
        "      source: {path: data/orders.csv}",
        "      source: {path: data/orders.csv}\n      expectations:\n        - {expect: column_values_to_be_between, colum: y, min_value: 0}",
    )
    path = write_pipeline("shop", text, ORDERS)
    result = slipway("--defs", str(defs_dir), "validate", home=home)
    assert_one_line_error(
        result,
        f"{path}:8: pipeline shop: expectation column_values_to_be_between: column: field required; colum: extra fields not permitted",
    )


def test_run_missing_data_file(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", BAD_ESTIMATOR.replace("RandomForestClasifier", "RandomForestClassifier"))
    result = slipway("--defs", str(defs_dir), "run", home=home)
    assert_one_line_error(
        result,
        f"{path}:6: pipeline shop, dataset orders: no file matches 'data/orders.csv' (looked for "
        f"{path.parent}/data/orders.csv); check the path, which is relative to the pipeline's folder",
    )


def test_run_unknown_pipeline(home):
    assert_one_line_error(slipway("run", "chrun", home=home), "no pipeline named 'chrun'; did you mean 'churn'?")


def test_bad_stack_file(home, tmp_path):
    stack = tmp_path / "broken.yaml"
    stack.write_text("experiment_tracker: {type: wandb}\n")
    result = slipway("--stack", str(stack), "validate", home=home)
    assert_one_line_error(
        result, f"{stack}:1: stack {stack}: experiment_tracker: unknown type 'wandb' (valid: mlflow, mlflow_server)"
    )


def test_stack_show_names_sources(home):
    result = slipway("stack", "show", home=home, env={"SLIPWAY_EXPERIMENT_TRACKER__UI_URL": "http://mlflow.example"})
    assert result.returncode == 0, result.stderr
    assert "  ui_url: 'http://mlflow.example'  # env SLIPWAY_EXPERIMENT_TRACKER__UI_URL" in result.stdout
    assert f"  tracking_uri: 'sqlite:///{home}/mlflow.db'  # local.yaml:7" in result.stdout


def test_run_examples_then_nothing_to_do(home):
    first = slipway("run", home=home)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].split() == ["asset", "status", "time", "detail"]
    assert max(len(line) for line in lines) <= 100, first.stdout
    assert any(line.startswith("churn/churn_classifier") and "✓ built" in line and "champion" in line for line in lines)
    assert "churn/churn_classifier: training…" in first.stderr  # progress while it runs
    assert "churn/customers: 3000 rows, 4/4 expectations passed, psi drift" in first.stderr
    second = slipway("run", home=home)
    assert second.returncode == 0, second.stdout + second.stderr
    rows = [line for line in second.stdout.splitlines()[1:-1]]
    assert rows and all("= reused" in row for row in rows), second.stdout
    assert any(row.startswith("churn/churn_classifier") and "= reused v1 (champion)" in row for row in rows)
    assert "12 reused" in second.stdout.splitlines()[-1]
    assert any(row.startswith("churn/holdout_scored") and "= reused" in row for row in rows)
    forced = slipway("run", "houses", "--force", home=home)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "houses/price_model" in forced.stdout and "challenger" in forced.stdout
    assert "churn" not in forced.stdout


@pytest.mark.parametrize("command", [["check", "yaml"], ["check", "defs"], ["list", "defs"]])
def test_dg_accepts_the_project(home, command):
    dg = str(Path(sys.executable).parent / "dg")
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    result = subprocess.run([dg, *command], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    if command == ["list", "defs"]:
        assert "churn/churn_classifier" in result.stdout


SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
  models:
    clf:
      dataset: orders
      target: churned
      features: [tenure, monthly_charges]
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3, random_state: 0}
      metrics: [accuracy]
"""


def test_dagster_asset_materialize_then_slipway_run_reuses_it(home, write_pipeline, defs_dir):
    """`dagster asset materialize` loads the same code location (SLIPWAY_DEFS is what --defs sets)."""
    from assets.data.generators import churn

    write_pipeline("shop", SHOP, {"data/orders.csv": churn(200, seed=1)})
    assert slipway("--defs", str(defs_dir), "run", home=home).returncode == 0
    write_pipeline("shop", SHOP.replace("max_depth: 3", "max_depth: 4"))
    env = {
        **os.environ,
        "SLIPWAY_HOME": str(home),
        "SLIPWAY_DEFS": str(defs_dir),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    dagster = str(Path(sys.executable).parent / "dagster")
    launched = subprocess.run(
        [dagster, "asset", "materialize", "-m", "definitions.definitions", "--select", "shop/clf"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert launched.returncode == 0, launched.stderr
    done = slipway("--defs", str(defs_dir), "run", home=home)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("shop/clf"))
    assert re.match(r"shop/clf += reused v2 \([^)]*\) +- ", row), done.stdout
    assert "dagster run" not in done.stdout.splitlines()[-1]  # nothing was launched


def test_a_python_file_that_does_not_import_is_one_line(home, defs_dir):
    (defs_dir / "team").mkdir()
    (defs_dir / "team" / "assets.py").write_text("def oops(:\n")
    result = slipway("--defs", str(defs_dir), "run", home=home)
    assert_one_line_error(
        result,
        f"{defs_dir}/team/assets.py:1: the definitions do not load: SyntaxError: invalid syntax (assets.py, line 1)",
    )


def test_the_k8s_stack_validates_and_shows_offline_naming_the_secrets_it_needs(home):
    env = {"DAGSTER_PG_PASSWORD": "", "SLIPWAY_ALERT_WEBHOOK": ""}
    validated = slipway("--stack", "k8s", "validate", home=home, env=env)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.splitlines()[:3] == [
        f"stack k8s: ok ({REPO}/stacks/k8s.yaml)",
        "stack k8s: needs DAGSTER_PG_PASSWORD (instance.password_env): not set here; required to run on this stack",
        "stack k8s: needs SLIPWAY_ALERT_WEBHOOK (alerter.url_env): not set here; "
        "optional, alerts are only logged without it",
    ]
    shown = slipway("stack", "show", "k8s", home=home, env={**env, "DAGSTER_PG_PASSWORD": "hunter2-secret"})
    assert shown.returncode == 0, shown.stderr
    assert "  type: 'k8s_job'  # k8s.yaml:" in shown.stdout and "  storage: 'postgres'  # k8s.yaml:" in shown.stdout
    assert "needs DAGSTER_PG_PASSWORD" not in shown.stdout and "hunter2" not in shown.stdout
    assert "needs SLIPWAY_ALERT_WEBHOOK" in shown.stdout


def test_slipway_run_on_the_k8s_stack_names_its_record_when_it_cannot_be_reached(home):
    # `slipway run` reads the deployment's record (what is current); here its database does not
    # exist: one line naming where it is, never the password.
    result = slipway("--stack", "k8s", "run", home=home, env={"DAGSTER_PG_PASSWORD": "hunter2-secret"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(
        "error: dagster instance (postgresql://dagster@slipway-postgresql:5432/dagster): cannot open it after"
    ), result.stderr
    assert "hunter2" not in result.stdout + result.stderr
