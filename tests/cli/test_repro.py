"""`slipway repro`: a registered model rebuilt from its recorded commit and data, compared exactly."""

from __future__ import annotations

import pandas as pd
import pytest
from gitrepo import git, init
from mlflow import MlflowClient

from definitions.cli.main import main
from definitions.cli.repro import repro
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    daily:
      source: {path: data/daily.csv}
    training:
      inputs: [daily]
      sql: select day, amount, day % 7 as weekday from daily
  models:
    forest:
      dataset: training
      target: amount
      estimator: sklearn.ensemble.RandomForestRegressor
      params: {n_estimators: 20, max_depth: 4, random_state: 0}
      split: {test_size: 0.25, seed: 3}
      metrics: [rmse, r2]
"""


@pytest.fixture
def shop(write_pipeline, defs_dir):
    frame = pd.DataFrame({"day": range(200), "amount": [d * 1.5 + (d * 7919) % 13 for d in range(200)]})
    path = write_pipeline("shop", SHOP, {"data/daily.csv": frame})
    init(defs_dir)
    return path


def test_repro_of_the_champion_matches_params_and_metrics_exactly(home, defs_dir, shop, write_pipeline, capsys):
    assert run(defs_dir=defs_dir).ok
    # Later commits and uncommitted work change nothing: repro reads the recorded commit and data.
    write_pipeline("shop", SHOP.replace("n_estimators: 20", "n_estimators: 30"))
    git(defs_dir, "commit", "-qam", "more trees")
    write_pipeline("shop", SHOP.replace("max_depth: 4", "max_depth: 9"))
    (defs_dir / "shop" / "data" / "daily.csv").write_text("day,amount\n1,2\n")
    found = repro("shop.forest@champion", None, defs_dir)
    assert found.ok and found.mismatches == [] and found.warnings == []
    metrics = (
        MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
        .get_run(MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db").get_model_version("shop.forest", "1").run_id)
        .data.metrics
    )
    assert [line for line in found.lines if line.startswith("metric")] == [
        f"metric {k}: {metrics[k]!r} (as recorded)" for k in ("r2", "rmse")
    ]
    assert main(["--defs", str(defs_dir), "repro", "shop/forest@1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "shop.forest v1: reproduced: params and metrics match"


def test_a_model_trained_from_a_dirty_tree_warns_and_reports_what_differs(home, defs_dir, shop, write_pipeline):
    write_pipeline("shop", SHOP.replace("max_depth: 4", "max_depth: 2"))  # not committed
    run(defs_dir=defs_dir)
    found = repro("shop.forest@1", None, defs_dir)
    assert found.warnings[0].startswith("v1 was trained from a tree with uncommitted changes: commit ")
    assert "does not hash to the recorded" in found.warnings[1]
    assert not found.ok
    assert "param max_depth: recorded '2', rebuilt '4'" in found.mismatches


def one_line(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.removeprefix("error: ").strip()


def test_unknown_commit_missing_data_and_bad_targets_are_one_line(home, defs_dir, shop, capsys):
    run(defs_dir=defs_dir)
    defs = ["--defs", str(defs_dir), "repro"]
    assert one_line(capsys, [*defs, "shop.forest"]) == (
        "'shop.forest': expected MODEL@VERSION or MODEL@ALIAS, e.g. churn.churn_classifier@champion"
    )
    assert one_line(capsys, [*defs, "shop.forest@9"]) == "shop.forest v9 is not in the registry"
    assert one_line(capsys, [*defs, "shop.forest@gold"]) == "shop.forest has no alias 'gold' (or is not registered)"
    assert one_line(capsys, [*defs, "nope.model@1"]) == "nope.model v1 is not in the registry"

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    sha = client.get_model_version("shop.forest", "1").tags["slipway.git_sha"]
    client.set_model_version_tag("shop.forest", "1", "slipway.git_sha", "0" * 40)
    assert one_line(capsys, [*defs, "shop.forest@1"]).startswith(
        "shop.forest v1 was trained from commit 000000000000, not in "
    )
    client.set_model_version_tag("shop.forest", "1", "slipway.git_sha", sha)

    for stored in (home / "artifacts" / "shop" / "training").glob("*.parquet"):
        stored.unlink()
    assert one_line(capsys, [*defs, "shop.forest@1"]).startswith(
        "shop.forest v1: the data it trained on is no longer stored: artifact store (local): shop/training of run "
    )


def test_a_corrupt_table_is_one_line_and_an_older_copy_of_the_same_data_is_used(home, defs_dir, shop, capsys):
    run(defs_dir=defs_dir)
    first = sorted((home / "artifacts" / "shop" / "training").glob("*.parquet"))
    run(defs_dir=defs_dir, force=True)  # the same data, stored again by another run
    newer = [p for p in (home / "artifacts" / "shop" / "training").glob("*.parquet") if p not in first]
    newer[0].unlink()
    assert repro("shop.forest@v1", None, defs_dir).ok  # `v1` is version 1 too
    first[0].write_bytes(b"not parquet")
    err = one_line(capsys, ["--defs", str(defs_dir), "repro", "shop.forest@1"])
    assert err.startswith("shop.forest v1: the data it trained on is no longer stored: ")


def test_repro_of_an_example_model_reproduces_its_metrics_exactly(home):
    from definitions.paths import DEFS_DIR

    assert run(["houses"]).ok
    found = repro("houses/price_model@champion", None, DEFS_DIR)
    assert found.ok, found.mismatches
    assert [line.split(":")[0] for line in found.lines if line.startswith("metric")] == [
        "metric mae",
        "metric r2",
        "metric rmse",
    ]
    assert all(line.endswith("(as recorded)") for line in found.lines if line.startswith("metric"))
