"""`slipway validate` end to end, and `dg check yaml` agreeing with it on the same files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DG = str(BIN / "dg")


def slipway(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    env.pop("SLIPWAY_STACK", None)
    return subprocess.run([str(BIN / "slipway"), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
      expectations:
        - {expect: column_values_to_not_be_null, column: customer_id}
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 10}
      split: {test_size: 0.25}
      metrics: [accuracy]
"""

ORDERS = pd.DataFrame({"customer_id": [1, 2, 3, 4], "tenure": [1, 5, 9, 2], "churned": [0, 1, 0, 1]})

# Every optional key of the schema, as the README shows it.
FULL = """
type: assets.Pipeline
attributes:
  name: full
  description: Every optional key.
  datasets:
    customers:
      source: {path: data/orders.csv, format: csv}
      transform: definitions.custom:add_ratios
      expectations:
        - {expect: column_values_to_be_between, column: tenure, min_value: 0, max_value: 72, severity: warn}
      drift: {method: psi, threshold: 0.2, columns: [tenure]}
      description: Customers.
    generated:
      source: {generator: churn, rows: 100, seed: 3, params: {}}
    bundled:
      source: {sklearn: iris}
  models:
    churn_classifier:
      dataset: customers
      target: churned
      features: [tenure]
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 20, max_depth: 8}
      task: classification
      split: {test_size: 0.2, seed: 0, by: customer_id}
      metrics: [roc_auc, f1]
      promote: {alias: champion, gates: {roc_auc: ">= 0.75"}, must_beat: null}
      retrain:
        on_new_data: false
        on_drift: {method: psi, threshold: 0.2, features: [tenure]}
        schedule: "0 3 * * mon-fri"
        cooldown: 6h
        max_per_day: 2
      resources: {cpu: "2", memory: 4Gi}
      description: Churn.
    ridge:
      dataset: generated
      target: churned
      train: definitions.custom:ridge
      params: {alpha: 0.5}
      metrics: [rmse]
"""

# (folder, old, new, line slipway names): each one change the JSON Schema of the attributes refuses.
BAD = [
    (
        "dataset_key",
        "      source: {path: data/orders.csv}",
        "      source: {path: data/orders.csv}\n      colour: red",
        7,
    ),
    ("source_key", "{path: data/orders.csv}", "{path: data/orders.csv, sep: ';'}", 6),
    ("model_key", "      metrics: [accuracy]", "      metrics: [accuracy]\n      paramz: {}", 17),
    ("top_key", "  name: shop", "  name: shop\n  owner: me", 4),
    ("split_key", "split: {test_size: 0.25}", "split: {test_size: 0.25, shuffle: true}", 15),
    ("split_type", "split: {test_size: 0.25}", "split: {test_size: lots}", 15),
    ("split_range", "split: {test_size: 0.25}", "split: {test_size: 1.5}", 15),
    ("sklearn_name", "{path: data/orders.csv}", "{sklearn: mnist}", 6),
    ("missing_target", "      target: churned\n", "", 10),
    ("pipeline_name", "name: shop", "name: Shop", 3),
    (
        "expectation_without_expect",
        "{expect: column_values_to_not_be_null, column: customer_id}",
        "{column: customer_id}",
        8,
    ),
    ("severity", "column: customer_id}", "column: customer_id, severity: fatal}", 8),
    ("rows_type", "{path: data/orders.csv}", "{generator: churn, rows: many}", 6),
]


def _project(root: Path) -> Path:
    """A dg project at ``root`` with the repository's dg settings; returns its defs folder."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "parity"
            version = "0"

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "definitions"
            defs_module = "definitions.defs"
            registry_modules = ["assets"]
            """
        )
    )
    defs = root / "definitions" / "defs"
    defs.mkdir(parents=True)
    return defs


def _write(folder: Path, text: str) -> Path:
    (folder / "data").mkdir(parents=True)
    ORDERS.to_csv(folder / "data" / "orders.csv", index=False)
    (folder / "defs.yaml").write_text(textwrap.dedent(text).lstrip())
    return folder / "defs.yaml"


def _dg_check_yaml(project: Path, folders: list[Path], home: Path) -> list[subprocess.CompletedProcess[str]]:
    # One file per `dg check yaml`: given several files of one component type, dg 1.13 checks
    # only the last (dagster_dg_core.check keeps one document per type).
    env = {**os.environ, "SLIPWAY_HOME": str(home)}

    def check(folder: Path) -> subprocess.CompletedProcess[str]:
        command = [DG, "check", "yaml", str(folder)]
        return subprocess.run(command, capture_output=True, text=True, cwd=project, env=env, timeout=600)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(check, folders))


def test_dg_and_slipway_refuse_the_same_bad_files(home, tmp_path):
    defs = _project(tmp_path / "project")
    paths = {}
    for folder, old, new, _line in BAD:
        assert old in SHOP, folder
        paths[folder] = _write(defs / "bad" / folder, SHOP.replace(old, new))

    result = slipway("--defs", str(defs / "bad"), "validate", home=home)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    for folder, _old, _new, line in BAD:
        assert f"error: {paths[folder]}:{line}: pipeline " in result.stderr, (folder, result.stderr)

    for (folder, *_), checked in zip(
        BAD, _dg_check_yaml(tmp_path / "project", [p.parent for p in paths.values()], home), strict=True
    ):
        assert checked.returncode == 1, (folder, checked.stdout + checked.stderr)
        assert f"{paths[folder]}:" in checked.stdout, (folder, checked.stdout)


def test_dg_and_slipway_accept_the_good_files(home, tmp_path):
    defs = _project(tmp_path / "project")
    good = [_write(defs / "shop", SHOP).parent, _write(defs / "full", FULL).parent]
    for example in sorted((REPO / "definitions" / "defs").iterdir()):
        if (example / "defs.yaml").is_file():
            good.append(Path(shutil.copytree(example, defs / example.name)))

    result = slipway("--defs", str(defs), "validate", home=home)
    assert result.returncode == 0, result.stderr
    for folder in good:
        assert f"{folder / 'defs.yaml'}: pipeline " in result.stdout, result.stdout

    for folder, checked in zip(good, _dg_check_yaml(tmp_path / "project", good, home), strict=True):
        assert checked.returncode == 0, (folder, checked.stdout + checked.stderr)
        assert "All component YAML validated successfully." in checked.stdout


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.splitlines()


def test_validate_reports_every_problem_at_once(home, write_pipeline, defs_dir):
    text = (
        SHOP.replace("n_estimators: 10", "n_estimator: 10")
        .replace("column: customer_id}", "column: customer}")
        .replace("target: churned", "target: churn")
    )
    path = write_pipeline("shop", text)
    params = (
        f"error: {path}:14: pipeline shop: model clf: params: RandomForestClassifier has no parameter "
        "'n_estimator'; did you mean 'n_estimators'?"
    )
    assert _error_lines(slipway("--defs", str(defs_dir), "validate", home=home)) == [
        f"error: {path}:6: pipeline shop: dataset orders: no file matches 'data/orders.csv' (looked for "
        f"{path.parent}/data/orders.csv); check the path, which is relative to the pipeline's folder",
        params,
    ]

    write_pipeline("shop", text, {"data/orders.csv": ORDERS})
    assert _error_lines(slipway("--defs", str(defs_dir), "validate", home=home)) == [
        f"error: {path}:8: pipeline shop: dataset orders: expectation column_values_to_not_be_null: "
        "column 'customer' is not in data/orders.csv; did you mean 'customer_id'?",
        f"error: {path}:12: pipeline shop: model clf: target: column 'churn' is not in data/orders.csv "
        "(dataset orders); did you mean 'churned'?",
        params,  # in the file's order
    ]


def test_validate_refuses_a_bad_retrain_policy_with_its_line(home, write_pipeline, defs_dir):
    policy = {
        "cron": ("schedule: '0 3 * *'", "schedule '0 3 * *' has 4 fields; a cron schedule has 5"),
        "cron_range": ("schedule: '0 25 * * *'", "schedule '0 25 * * *': hour '25' is not in 0-23"),
        "duration": ("cooldown: 6 hours", "cooldown '6 hours' is not a duration like 30m, 6h or 1d"),
        "max": ("max_per_day: 0", "max_per_day: Input should be greater than or equal to 1"),
        "method": ("on_drift: {method: kl}", "on_drift.method: Input should be 'psi', 'ks' or 'chi2'"),
        "never": ("schedule: '0 0 31 2 *'", "schedule '0 0 31 2 *' never runs: no month it names has a day 31"),
        "trigger": ("cooldown: 6h, on_new_data: false", "no trigger: give on_new_data: true, on_drift or schedule"),
        "forever": ("cooldown: 3000000d, on_new_data: true", "cooldown '3000000d' is longer than a year (366d)"),
        "unreachable": ("on_drift: {method: ks, threshold: 5}", "threshold 5.0: a ks score is at most 1, so it would"),
    }
    paths = {}
    for name, (line, _message) in policy.items():
        text = SHOP.replace("name: shop", f"name: {name}").replace(
            "      metrics: [accuracy]", f"      metrics: [accuracy]\n      retrain: {{{line}}}"
        )
        paths[name] = write_pipeline(name, text, {"data/orders.csv": ORDERS})
    lines = _error_lines(slipway("--defs", str(defs_dir), "validate", home=home))
    for name, (_line, message) in policy.items():
        found = [line for line in lines if line.startswith(f"error: {paths[name]}:17: pipeline {name}")]
        assert len(found) == 1 and message in found[0], (name, lines)
    assert len(lines) == len(policy), lines


def test_a_drift_feature_that_is_not_a_model_feature_is_refused(home, write_pipeline, defs_dir):
    text = SHOP.replace(
        "      metrics: [accuracy]",
        "      features: [tenure]\n      metrics: [accuracy]\n      retrain: {on_drift: {features: [customer_id]}}",
    )
    path = write_pipeline("shop", text, {"data/orders.csv": ORDERS})
    (line,) = _error_lines(slipway("--defs", str(defs_dir), "validate", home=home))
    assert line == (
        f"error: {path}:18: pipeline shop: models.clf.retrain.on_drift.features.0: "
        "'customer_id' is not among the model's features ['tenure']"
    )
    # Without declared features, a drift feature must be a column of the dataset.
    text = SHOP.replace(
        "      metrics: [accuracy]", "      metrics: [accuracy]\n      retrain: {on_drift: {features: [tenur]}}"
    )
    path = write_pipeline("shop", text, {"data/orders.csv": ORDERS})
    (line,) = _error_lines(slipway("--defs", str(defs_dir), "validate", home=home))
    assert line.startswith(f"error: {path}:17: pipeline shop: model clf: retrain.on_drift.features: column 'tenur'")
    assert "did you mean 'tenure'?" in line


def test_validate_without_expectations_imports_neither_dagster_mlflow_nor_gx(home, write_pipeline, defs_dir):
    write_pipeline(
        "shop",
        SHOP.replace("      expectations:\n", "").replace(
            "        - {expect: column_values_to_not_be_null, column: customer_id}\n", ""
        ),
        {"data/orders.csv": ORDERS},
    )
    code = (
        "import sys; from pathlib import Path; from definitions.cli.validate import validate; "
        f"validate(defs_dir=Path({str(defs_dir)!r})); "
        "print(sorted(m for m in ('dagster', 'mlflow', 'great_expectations') if m in sys.modules))"
    )
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
