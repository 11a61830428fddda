"""Materialize real pipelines on a temporary SLIPWAY_HOME and inspect Dagster and MLflow."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient

from assets.data.generators import churn
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

CHURN = """
type: assets.Pipeline
attributes:
  name: churn
  datasets:
    customers:
      source: {path: data/*.csv}
      expectations:
        - {expect: column_values_to_not_be_null, column: customer_id}
        - {expect: column_values_to_be_between, column: tenure, min_value: 0, max_value: 72}
  models:
    clf:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges, support_calls, contract_months]
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 20, max_depth: 5, random_state: 0}
      split: {test_size: 0.25, seed: 0}
      metrics: [roc_auc, f1]
      promote: {gates: {roc_auc: ">= 0.6"}}
    lgbm:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges, support_calls, contract_months]
      estimator: lightgbm.LGBMClassifier
      params: {n_estimators: 30, verbose: -1, random_state: 0}
      metrics: [roc_auc]
      promote: {gates: {roc_auc: ">= 0.99"}}
"""


@pytest.fixture
def churn_pipeline(write_pipeline):
    return write_pipeline("churn", CHURN, {"data/batch_000.csv": churn(800, seed=1)})


def _client(home):
    return MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")


def test_run_tracks_registers_and_promotes(home, defs_dir, churn_pipeline):
    report = run(defs_dir=defs_dir)
    status = {o.key: o.status for o in report.outcomes}
    assert status == {"churn/customers": "built", "churn/clf": "built", "churn/lgbm": "failed"}
    client = _client(home)

    clf = next(o for o in report.outcomes if o.key == "churn/clf")
    assert clf.model_version == "1" and clf.alias == "champion"
    version = client.get_model_version_by_alias("churn.clf", "champion")
    assert str(version.version) == "1"
    mlflow_run = client.get_run(version.run_id)
    assert mlflow_run.data.params["n_estimators"] == "20"
    assert 0.6 <= mlflow_run.data.metrics["roc_auc"] <= 1.0
    tags = mlflow_run.data.tags
    assert tags["slipway.asset_key"] == "churn/clf"
    assert [tags["slipway.dagster_run_id"]] == report.dagster_run_ids
    assert len(tags["slipway.git_sha"]) in (7, 40) or tags["slipway.git_sha"] == "unknown"
    assert tags["slipway.git_dirty"] in ("true", "false")
    assert tags["slipway.definition_hash"]
    assert tags["slipway.version"] == importlib.metadata.version("slipway")
    lock = (Path(__file__).resolve().parents[2] / "uv.lock").read_bytes()
    assert tags["slipway.lock_hash"] == hashlib.blake2b(lock, digest_size=12).hexdigest()
    assert json.loads(tags["slipway.split"])["seed"] == 0
    dataset_input = mlflow_run.inputs.dataset_inputs[0].dataset
    assert dataset_input.name == "churn/customers"
    assert tags["slipway.upstream.churn/customers"] == dataset_input.digest
    model_files = {a.path for a in client.list_artifacts(version.run_id, "model")}
    assert {"model/MLmodel", "model/input_example.json"} <= model_files
    mlmodel = Path(client.download_artifacts(version.run_id, "model/MLmodel")).read_text()
    assert "signature:" in mlmodel and '"name": "tenure"' in mlmodel
    experiment = client.get_experiment(mlflow_run.info.experiment_id)
    assert experiment.name == "churn"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert tags["mlflow.source.name"] == str(churn_pipeline)
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.info.end_time >= mlflow_run.info.start_time

    # LightGBM (sklearn API) trained and registered, but its gate failed: no alias at all.
    lgbm = client.get_model_version("churn.lgbm", "1")
    assert lgbm.aliases == []
    assert lgbm.tags["slipway.gates_passed"] == "false"

    # The Dagster materialization links back to MLflow with numbers the UI can plot.
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["churn", "clf"]))
        metadata = event.asset_materialization.metadata
        # MLflow 3.17's UI opens the GenAI view unless the link asks for the training runs.
        assert metadata["mlflow_run"].value.endswith(f"/runs/{version.run_id}?workflowType=machine_learning")
        assert metadata["model_version"].value == 1
        assert metadata["alias"].value == "champion"
        assert isinstance(metadata["metric_roc_auc"].value, float)
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["churn", "customers"]), "expect_0_column_values_to_not_be_null"), limit=1
        )
        assert checks[0].status.value == "SUCCEEDED"


def test_second_run_reuses_and_force_retrains_as_challenger(home, defs_dir, churn_pipeline):
    run(["churn"], defs_dir=defs_dir)
    again = run(["churn"], defs_dir=defs_dir)
    status = {o.key: o.status for o in again.outcomes}
    assert status == {"churn/customers": "reused", "churn/clf": "reused", "churn/lgbm": "failed"}
    clf = next(o for o in again.outcomes if o.key == "churn/clf")
    assert clf.model_version == "1" and clf.alias == "champion"

    forced = run(["churn"], force=True, defs_dir=defs_dir)
    clf = next(o for o in forced.outcomes if o.key == "churn/clf")
    # Same seed, same holdout, same score: it does not beat the champion.
    assert (clf.status, clf.model_version, clf.alias) == ("built", "2", "challenger")
    client = _client(home)
    assert str(client.get_model_version_by_alias("churn.clf", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("churn.clf", "challenger").version) == "2"


def test_changing_one_model_retrains_only_that_model(home, defs_dir, write_pipeline):
    # Both models pass their gates here, so a retrain of the other one would be a wrong rebuild.
    passing = CHURN.replace('">= 0.99"', '">= 0.5"')
    write_pipeline("churn", passing, {"data/batch_000.csv": churn(800, seed=1)})
    first = run(defs_dir=defs_dir)
    assert {o.key: o.status for o in first.outcomes} == dict.fromkeys(
        ["churn/customers", "churn/clf", "churn/lgbm"], "built"
    )
    write_pipeline("churn", passing.replace("n_estimators: 20", "n_estimators: 25"))
    report = run(defs_dir=defs_dir)
    status = {o.key: (o.status, o.detail) for o in report.outcomes}
    first_run = first.dagster_run_ids[0][:8]
    assert status["churn/customers"] == ("reused", f"unchanged since run {first_run}")
    assert status["churn/clf"][0] == "built"
    assert status["churn/lgbm"] == ("reused", f"unchanged since run {first_run}")
    client = _client(home)
    assert [str(v.version) for v in client.search_model_versions("name='churn.lgbm'")] == ["1"]
    assert sorted(str(v.version) for v in client.search_model_versions("name='churn.clf'")) == ["1", "2"]


def test_new_data_rebuilds_dataset_and_model(home, defs_dir, churn_pipeline):
    run(defs_dir=defs_dir)
    churn(300, seed=2, id_offset=10_000).to_csv(churn_pipeline.parent / "data" / "batch_001.csv", index=False)
    report = run(defs_dir=defs_dir)
    status = {o.key: o.status for o in report.outcomes}
    assert status["churn/customers"] == "built"
    assert status["churn/clf"] == "built"
    customers = next(o for o in report.outcomes if o.key == "churn/customers")
    assert customers.detail == "1100 rows"


def test_failing_expectation_blocks_training_and_registers_nothing(home, defs_dir, churn_pipeline):
    bad = churn(200, seed=3)
    bad.loc[0, "tenure"] = -5
    bad.to_csv(churn_pipeline.parent / "data" / "batch_000.csv", index=False)
    report = run(defs_dir=defs_dir)
    status = {o.key: o.status for o in report.outcomes}
    assert status == {"churn/customers": "failed", "churn/clf": "blocked", "churn/lgbm": "blocked"}
    assert "expect_1_column_values_to_be_between" in report.outcomes[0].detail
    assert report.outcomes[1].detail == "churn/customers failed"
    assert _client(home).search_registered_models() == []
    assert not report.ok


def test_bundled_sklearn_source_and_training_function(home, defs_dir, write_pipeline):
    write_pipeline(
        "wine",
        """
        type: assets.Pipeline
        attributes:
          name: wine
          datasets:
            samples:
              source: {sklearn: wine}
              transform: definitions.custom:add_ratios
              drift: {method: ks, threshold: 0.9}
          models:
            ridge:
              dataset: samples
              target: target
              train: definitions.custom:ridge
              params: {alpha: 0.5}
              metrics: [rmse, r2]
        """,
    )
    report = run(defs_dir=defs_dir)
    assert [o.status for o in report.outcomes] == ["built", "built"]
    ridge = report.outcomes[1]
    assert ridge.alias == "champion" and ridge.metrics["r2"] > 0.5
    stored = pd.read_parquet(next((home / "artifacts" / "wine" / "samples").glob("*.parquet")))
    assert {"malic_acid_per_alcohol", "ash_per_alcohol"} <= set(stored.columns)  # the transform ran
    tags = _client(home).get_run(_client(home).get_model_version("wine.ridge", "1").run_id).data.tags
    assert tags["slipway.upstream.wine/samples"] == report.outcomes[0].data_version


def test_failing_gate_keeps_the_champion(home, defs_dir, churn_pipeline, write_pipeline):
    run(defs_dir=defs_dir)
    write_pipeline(
        "churn",
        CHURN.replace('roc_auc: ">= 0.6"', 'roc_auc: ">= 0.999"').replace("n_estimators: 20", "n_estimators: 21"),
    )
    report = run(defs_dir=defs_dir)
    clf = next(o for o in report.outcomes if o.key == "churn/clf")
    assert (clf.status, clf.model_version, clf.alias) == ("failed", "2", None)
    assert "check failed: gate_roc_auc" in clf.detail
    client = _client(home)
    assert str(client.get_model_version_by_alias("churn.clf", "champion").version) == "1"
    assert client.get_model_version("churn.clf", "2").aliases == []
    # A failed build is not reused: the next run tries again.
    again = run(defs_dir=defs_dir)
    assert next(o for o in again.outcomes if o.key == "churn/clf").status == "failed"


def test_skops_stack_saves_forests_and_explains_untrusted_types(home, defs_dir, churn_pipeline, tmp_path):
    stack = tmp_path / "safe.yaml"
    stack.write_text((Path(__file__).parents[2] / "stacks" / "local.yaml").read_text().replace("cloudpickle", "skops"))
    report = run(stack_name=str(stack), defs_dir=defs_dir)
    status = {o.key: (o.status, o.detail) for o in report.outcomes}
    assert status["churn/clf"][0] == "built"
    mlmodel = Path(
        _client(home).download_artifacts(
            next(o for o in report.outcomes if o.key == "churn/clf").mlflow_run.rsplit("/", 1)[1].partition("?")[0],
            "model/MLmodel",
        )
    ).read_text()
    assert "serialization_format: skops" in mlmodel
    assert status["churn/lgbm"] == (
        "failed",
        "experiment tracker (mlflow): skops will not save a LGBMClassifier holding untrusted types "
        "['collections.OrderedDict', 'lightgbm.basic.Booster', 'lightgbm.sklearn.LGBMClassifier']; add them to "
        "experiment_tracker.skops_trusted_types in the stack, or use `serialization: cloudpickle`",
    )


def test_parquet_glob_and_generator_sources(home, defs_dir, write_pipeline):
    folder = write_pipeline(
        "mixed",
        """
        type: assets.Pipeline
        attributes:
          name: mixed
          datasets:
            landed:
              source: {path: "landing/*.parquet"}
            synthetic:
              source: {generator: houses, rows: 300, seed: 4}
          models:
            price:
              dataset: synthetic
              target: price
              estimator: sklearn.linear_model.LinearRegression
              metrics: [r2]
        """,
    ).parent
    (folder / "landing").mkdir()
    churn(100, seed=1).to_parquet(folder / "landing" / "a.parquet")
    churn(50, seed=2, id_offset=100).to_parquet(folder / "landing" / "b.parquet")
    report = run(defs_dir=defs_dir)
    details = {o.key: (o.status, o.detail) for o in report.outcomes}
    assert details["mixed/landed"] == ("built", "150 rows")
    assert details["mixed/synthetic"] == ("built", "300 rows")
    assert details["mixed/price"][0] == "built"
    # The generator is seeded: a forced rebuild produces the same data version.
    again = run(force=True, defs_dir=defs_dir)
    first = {o.key: o.data_version for o in report.outcomes}
    assert {o.key: o.data_version for o in again.outcomes}["mixed/synthetic"] == first["mixed/synthetic"]
    # A dataset definition that changes the data: the model waits for it, then trains.
    (folder / "defs.yaml").write_text((folder / "defs.yaml").read_text().replace("rows: 300", "rows: 320"))
    changed = run(defs_dir=defs_dir)
    details = {o.key: (o.status, o.detail) for o in changed.outcomes}
    assert details["mixed/synthetic"] == ("built", "320 rows")
    assert details["mixed/landed"][0] == "reused"
    assert details["mixed/price"][0] == "built"
    assert len(changed.dagster_run_ids) == 2


def test_edited_expectation_rebuilds_the_dataset_but_not_its_models(home, defs_dir, churn_pipeline, write_pipeline):
    run(defs_dir=defs_dir)
    write_pipeline("churn", CHURN.replace("max_value: 72", "max_value: 80"))
    report = run(defs_dir=defs_dir)
    details = {o.key: (o.status, o.detail) for o in report.outcomes}
    assert details["churn/customers"][0] == "built"
    assert details["churn/clf"] == ("reused", "unchanged (churn/customers rebuilt with the same data)")
    assert details["churn/lgbm"][0] == "failed"  # never succeeded, so it trains with the dataset
    assert len(report.dagster_run_ids) == 1
    assert str(_client(home).get_model_version_by_alias("churn.clf", "champion").version) == "1"


def test_a_changed_model_trains_with_its_new_data_the_others_once_the_data_changed(
    home, defs_dir, churn_pipeline, write_pipeline
):
    """A changed model trains with its dataset; a model that only has new data waits for the new data version."""
    run(defs_dir=defs_dir)
    churn(100, seed=9, id_offset=5_000).to_csv(churn_pipeline.parent / "data" / "batch_001.csv", index=False)
    write_pipeline("churn", CHURN.replace("n_estimators: 20", "n_estimators: 25"))
    report = run(defs_dir=defs_dir)
    details = {o.key: (o.status, o.detail) for o in report.outcomes}
    assert details["churn/customers"] == ("built", "900 rows")
    assert details["churn/clf"][0] == "built"
    # lgbm's definition did not change: it is decided once the dataset's new data version is
    # known (it changed), and trains in a second run.
    assert details["churn/lgbm"][0] == "failed" and "gate_roc_auc" in details["churn/lgbm"][1]
    assert len(report.dagster_run_ids) == 2
    lgbm = _client(home).get_model_version("churn.lgbm", "2")
    assert lgbm.tags["slipway.dagster_run_id"] == report.dagster_run_ids[1]
    clf = _client(home).get_model_version("churn.clf", "2")
    assert clf.tags["slipway.dagster_run_id"] == report.dagster_run_ids[0]
    assert (
        clf.tags["slipway.definition_hash"]
        != _client(home).get_model_version("churn.clf", "1").tags["slipway.definition_hash"]
    )


def test_bad_transform_result_and_drift_columns_fail_with_a_reason(home, defs_dir, write_pipeline, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    write_pipeline(
        "wine",
        """
        type: assets.Pipeline
        attributes:
          name: wine
          datasets:
            arrays:
              source: {sklearn: wine}
              transform: transforms:to_array
            samples:
              source: {sklearn: wine}
              drift: {method: psi, columns: [alcohol, colour]}
        """,
    )
    report = run(defs_dir=defs_dir)
    details = {o.key: (o.status, o.detail) for o in report.outcomes}
    assert details["wine/arrays"] == (
        "failed",
        f"{defs_dir}/wine/defs.yaml:7: pipeline wine, dataset arrays: "
        "transform transforms:to_array returned an object of type ndarray, not a pandas DataFrame",
    )
    assert details["wine/samples"] == (
        "failed",
        "pipeline wine, dataset samples: drift columns ['colour'] are not in the dataset",
    )
