"""Batch scoring: a `predictions:` table is scored by whatever holds the alias, and follows it."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
from views import current_table, stack_instance

from assets.data.generators import churn
from assets.serve.predictions import score_file
from definitions.cli.runner import run
from definitions.definitions import build_definitions
from resources.errors import DataError

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/*.csv}
    new_customers:
      source: {path: incoming/*.csv}
  models:
    clf:
      dataset: orders
      target: churned
      features: [tenure, monthly_charges, support_calls]
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3, random_state: 0}
      metrics: [roc_auc]
      promote: {gates: {roc_auc: ">= 0.5"}, must_beat: null}
  predictions:
    scored:
      model: clf
      dataset: new_customers
      chunk_rows: 40
"""


def _rows(report):
    return {o.key: (o.status, o.reason or o.detail) for o in report.outcomes}


def _scored_by(key: str = "shop/scored") -> tuple[int, str]:
    with stack_instance() as instance:
        record = instance.fetch_materializations(dg.AssetKey.from_user_string(key), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    return metadata["model_version"].value, metadata["alias"].value


@pytest.mark.slow
def test_the_table_is_scored_by_the_champion_and_rescored_when_the_alias_moves(home, defs_dir, write_pipeline):
    incoming = churn(100, seed=7).drop(columns=["churned"])
    path = write_pipeline("shop", SHOP, {"data/orders.csv": churn(300, seed=1), "incoming/batch.csv": incoming})
    first = run(defs_dir=defs_dir)
    assert first.ok, _rows(first)
    table = current_table("shop/scored")
    assert len(table) == 100 and set(table["prediction"]) <= {0, 1}
    assert list(table.columns) == [*incoming.columns, "prediction"]
    assert _scored_by() == (1, "champion")

    again = run(defs_dir=defs_dir)
    assert _rows(again)["shop/scored"][0] == "reused"

    # A new version takes the alias: the table is rescored, and says why.
    path.write_text(path.read_text().replace("max_depth: 3", "max_depth: 4"))
    moved = run(defs_dir=defs_dir)
    assert _rows(moved)["shop/clf"][0] == "built"
    assert _rows(moved)["shop/scored"] == ("built", "shop.clf@champion moved v1 → v2")
    assert _scored_by() == (2, "champion")

    # A pin moves it back, with no training: rescored by v1.
    path.write_text(path.read_text().replace("must_beat: null}", "must_beat: null, pin: {champion: 1}}"))
    pinned = run(defs_dir=defs_dir)
    assert _rows(pinned)["shop/scored"] == ("built", "shop.clf@champion moved v2 → v1"), _rows(pinned)
    assert _scored_by() == (1, "champion")

    # New rows to score: rescored for its data.
    churn(30, seed=8).drop(columns=["churned"]).to_csv(path.parent / "incoming" / "batch2.csv", index=False)
    fresh = run(defs_dir=defs_dir)
    assert _rows(fresh)["shop/scored"] == ("built", "shop/new_customers has new data")
    assert len(current_table("shop/scored")) == 130


class _Model:
    feature_names_in_ = ["a", "b"]

    def predict(self, frame):
        return (frame["a"] + frame["b"]).to_numpy()


def test_a_table_is_scored_in_chunks_with_every_row_and_column_kept(tmp_path):
    frame = pd.DataFrame({"id": range(2500), "a": range(2500), "b": [1.5] * 2500})
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, row_group_size=700)
    out, rows = score_file(source, _Model(), "prediction", 1000)
    assert rows == 2500
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["id", "a", "b", "prediction"]
    assert scored["prediction"].tolist() == (frame["a"] + frame["b"]).tolist()
    assert pq.ParquetFile(out).metadata.num_row_groups >= 3  # written chunk by chunk


def test_missing_columns_are_named_and_an_existing_prediction_column_is_refused(tmp_path):
    source = tmp_path / "in.parquet"
    pd.DataFrame({"a": [1], "prediction": [0]}).to_parquet(source)
    with pytest.raises(DataError, match="missing from the table: b"):
        score_file(source, _Model(), "prediction", 10)
    pd.DataFrame({"a": [1], "b": [2], "prediction": [0]}).to_parquet(source)
    with pytest.raises(DataError, match="already has a column 'prediction'"):
        score_file(source, _Model(), "prediction", 10)


def test_a_predictions_entry_naming_an_unknown_model_or_dataset_is_refused_with_its_place():
    from assets.spec.schema import PipelineSpec

    spec = PipelineSpec.model_validate(
        {
            "name": "shop",
            "datasets": {"orders": {"source": {"path": "data/*.csv"}}},
            "models": {"clf": {"dataset": "orders", "target": "y", "estimator": "a.B", "metrics": ["f1"]}},
            "predictions": {
                "scored": {"model": "cfl", "dataset": "orderz"},
                "orders": {"model": "clf", "dataset": "orders"},
            },
        }
    )
    assert sorted(spec.problems()) == [
        (("predictions", "orders"), "'orders' names both a prediction table and a dataset or model"),
        (("predictions", "scored", "dataset"), "unknown dataset 'orderz'; did you mean 'orders'?"),
        (("predictions", "scored", "model"), "unknown model 'cfl'; did you mean 'clf'?"),
    ]


@pytest.mark.slow
def test_the_whole_asset_job_builds_on_a_first_run_before_any_version_holds_the_alias(home, defs_dir, write_pipeline):
    """What `dagster job launch` of the code location's job runs (every asset and every observable
    source, in one run): the alias is observed before the model's first training has registered
    anything, which is a state to record, not a failure; the table is then scored by the champion."""
    incoming = churn(100, seed=7).drop(columns=["churned"])
    write_pipeline("shop", SHOP, {"data/orders.csv": churn(300, seed=1), "incoming/batch.csv": incoming})
    job = build_definitions(defs_dir).resolve_implicit_global_asset_job_def()
    with stack_instance() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        observed = instance.fetch_observations(dg.AssetKey(["shop", "champion_of_clf"]), limit=10, ascending=True)
    first = observed.records[0].event_log_entry.asset_observation
    assert first.tags["dagster/data_version"] == "none"
    assert first.metadata["version"].value == "none: no version holds @champion yet"
    assert _scored_by() == (1, "champion")
