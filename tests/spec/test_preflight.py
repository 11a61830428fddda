"""`slipway validate` beyond the schema: data files, headers, estimator params, the component's schema."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from assets.spec.model_spec import Split
from definitions.cli.validate import validate
from resources.errors import DefinitionError

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
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 10}
      metrics: [accuracy]
"""

ORDERS = pd.DataFrame({"customer_id": [1, 2, 3, 4], "tenure": [1, 5, 9, 2], "churned": [0, 1, 0, 1]})


def _fails(expected: str, defs_dir) -> None:
    """validate() raises one DefinitionError whose lines are exactly ``expected`` (each pinned)."""
    with pytest.raises(DefinitionError, match=re.escape(expected)) as info:
        validate(defs_dir=defs_dir)
    assert str(info.value) == expected


def test_missing_file_and_empty_glob(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", SHOP)
    other = SHOP.replace("name: shop", "name: other").replace(
        "{path: data/orders.csv}", "{path: landing/batch_*.csv}\n      transform: definitions.custom:add_ratios"
    )
    other = write_pipeline("other", other)
    _fails(
        f"{other}:6: pipeline other: dataset orders: no file matches 'landing/batch_*.csv' (looked for "
        f"{other.parent}/landing/batch_*.csv); check the path, which is relative to the pipeline's folder\n"
        f"{path}:6: pipeline shop: dataset orders: no file matches 'data/orders.csv' (looked for "
        f"{path.parent}/data/orders.csv); check the path, which is relative to the pipeline's folder",
        defs_dir,
    )


def test_misspelled_estimator_param(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", SHOP.replace("n_estimators: 10", "n_estimator: 10"), {"data/orders.csv": ORDERS})
    _fails(
        f"{path}:12: pipeline shop: model clf: params: RandomForestClassifier has no parameter 'n_estimator'; "
        "did you mean 'n_estimators'?",
        defs_dir,
    )


def test_params_of_an_estimator_taking_kwargs_or_of_a_train_function_are_not_checked(home, write_pipeline, defs_dir):
    lgbm = SHOP.replace("sklearn.ensemble.RandomForestClassifier", "lightgbm.LGBMClassifier").replace(
        "n_estimators: 10", "n_estimators: 10, min_child_samples: 1, anything_lightgbm_knows: 3"
    )
    write_pipeline("shop", lgbm, {"data/orders.csv": ORDERS})
    ridge = SHOP.replace("name: shop", "name: other").replace(
        "estimator: sklearn.ensemble.RandomForestClassifier", "train: definitions.custom:ridge"
    )
    write_pipeline("other", ridge.replace("n_estimators: 10", "alpha: 0.5"), {"data/orders.csv": ORDERS})
    assert validate(defs_dir=defs_dir)[1:] == [
        f"{defs_dir}/other/defs.yaml: pipeline other: ok (1 dataset, 1 model)",
        f"{defs_dir}/shop/defs.yaml: pipeline shop: ok (1 dataset, 1 model)",
    ]


def test_columns_missing_from_the_header(home, write_pipeline, defs_dir):
    text = SHOP.replace(
        "      source: {path: data/orders.csv}",
        "      source: {path: data/orders.csv}\n"
        "      expectations:\n"
        "        - {expect: column_values_to_not_be_null, column: custmer_id}\n"
        "        - {expect: column_pair_values_a_to_be_greater_than_b, column_A: tenure, column_B: churn}\n"
        "        - {expect: compound_columns_to_be_unique, column_list: [customer_id, tenures]}\n"
        "        - {expect: column_to_exist, column: arrives_later}\n"
        "      drift: {columns: [tenure, tenur]}",
    ).replace("      target: churned", "      target: churn\n      features: [tenure, customer]")
    path = write_pipeline("shop", text, {"data/orders.csv": ORDERS})
    _fails(
        f"{path}:8: pipeline shop: dataset orders: expectation column_values_to_not_be_null: column 'custmer_id' "
        "is not in data/orders.csv; did you mean 'customer_id'?\n"
        f"{path}:9: pipeline shop: dataset orders: expectation column_pair_values_a_to_be_greater_than_b: "
        "column 'churn' is not in data/orders.csv; did you mean 'churned'?\n"
        f"{path}:10: pipeline shop: dataset orders: expectation compound_columns_to_be_unique: column 'tenures' "
        "is not in data/orders.csv; did you mean 'tenure'?\n"
        f"{path}:12: pipeline shop: dataset orders: drift: column 'tenur' is not in data/orders.csv; "
        "did you mean 'tenure'?\n"
        f"{path}:16: pipeline shop: model clf: target: column 'churn' is not in data/orders.csv (dataset orders); "
        "did you mean 'churned'?\n"
        f"{path}:17: pipeline shop: model clf: features: column 'customer' is not in data/orders.csv "
        "(dataset orders); did you mean 'customer_id'?",
        defs_dir,
    )


def test_every_file_of_a_glob_must_have_the_column(home, write_pipeline, defs_dir):
    text = SHOP.replace("data/orders.csv", "data/batch_*.csv").replace(
        "      target: churned", "      target: churned\n      features: [tenure]"
    )
    path = write_pipeline(
        "shop",
        text,
        {
            "data/batch_000.csv": ORDERS,
            "data/batch_001.csv": ORDERS.drop(columns="tenure"),
            "data/batch_002.csv": ORDERS.drop(columns=["tenure", "churned"]),
        },
    )
    _fails(
        f"{path}:10: pipeline shop: model clf: target: column 'churned' is not in data/batch_002.csv "
        "(dataset orders)\n"
        f"{path}:11: pipeline shop: model clf: features: column 'tenure' is not in data/batch_001.csv, "
        "data/batch_002.csv (dataset orders)",
        defs_dir,
    )


def test_parquet_header_is_read_from_its_schema(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", SHOP.replace("data/orders.csv", "orders.parquet").replace("churned", "churn"))
    # pandas stores a named index as a column of the file but reads it back as the index
    ORDERS.set_index("customer_id").to_parquet(path.parent / "orders.parquet")
    _fails(
        f"{path}:10: pipeline shop: model clf: target: column 'churn' is not in orders.parquet (dataset orders); "
        "did you mean 'churned'?",
        defs_dir,
    )
    write_pipeline("shop", SHOP.replace("data/orders.csv", "orders.parquet").replace("churned", "customer_id"))
    _fails(
        f"{path}:10: pipeline shop: model clf: target: column 'customer_id' is not in orders.parquet (dataset orders)",
        defs_dir,
    )


def test_only_the_header_is_read(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", SHOP)
    # rows that are not CSV, nor even UTF-8: loading the file would fail, its header is fine
    (path.parent / "data").mkdir()
    (path.parent / "data/orders.csv").write_bytes(b"customer_id,churned\r\n" + bytes(range(256)) * 4096)
    assert validate(defs_dir=defs_dir)[1:] == [f"{path}: pipeline shop: ok (1 dataset, 1 model)"]


def test_unreadable_headers(home, write_pipeline, defs_dir):
    text = SHOP.replace(
        "      source: {path: data/orders.csv}",
        "      source: {path: data/orders.csv}\n    events:\n      source: {path: data/events.json}",
    )
    path = write_pipeline("shop", text)
    (path.parent / "data").mkdir()
    (path.parent / "data/orders.csv").write_text("")
    (path.parent / "data/events.json").write_text("{}")
    _fails(
        f"{path}:6: pipeline shop: dataset orders: {path.parent}/data/orders.csv is empty: a CSV file needs a "
        "header line\n"
        f"{path}:8: pipeline shop: dataset events: {path.parent}/data/events.json: unknown file format 'json'; "
        "set `format: csv` or `format: parquet`",
        defs_dir,
    )


@pytest.mark.skipif("by" not in Split.model_fields, reason="Split has no `by` field yet")
def test_split_by_column(home, write_pipeline, defs_dir):
    path = write_pipeline(
        "shop",
        SHOP.replace("metrics: [accuracy]", "metrics: [accuracy]\n      split: {by: customer}"),
        {"data/orders.csv": ORDERS},
    )
    _fails(
        f"{path}:14: pipeline shop: model clf: split.by: column 'customer' is not in data/orders.csv "
        "(dataset orders); did you mean 'customer_id'?",
        defs_dir,
    )


def test_sklearn_dataset_columns_are_checked_and_generated_or_transformed_ones_are_not(home, write_pipeline, defs_dir):
    bundled = SHOP.replace("{path: data/orders.csv}", "{sklearn: diabetes}").replace("churned", "progression")
    path = write_pipeline(
        "shop", bundled.replace("accuracy", "r2").replace("RandomForestClassifier", "RandomForestRegressor")
    )
    generated = SHOP.replace("name: shop", "name: gen").replace("{path: data/orders.csv}", "{generator: churn}")
    write_pipeline("gen", generated.replace("target: churned", "target: not_a_generated_column"))
    transformed = SHOP.replace("name: shop", "name: tra").replace(
        "{path: data/orders.csv}", "{path: data/orders.csv}\n      transform: definitions.custom:add_ratios"
    )
    write_pipeline(
        "tra", transformed.replace("target: churned", "target: tenure_per_customer_id"), {"data/orders.csv": ORDERS}
    )
    _fails(
        f"{path}:10: pipeline shop: model clf: target: column 'progression' is not in scikit-learn's diabetes "
        "(dataset orders)",
        defs_dir,
    )


@pytest.mark.parametrize("name", ["diabetes", "breast_cancer", "iris", "wine"])
def test_sklearn_columns_match_the_loaded_frame(name):
    from sklearn import datasets

    from assets.spec.preflight import sklearn_columns

    assert sklearn_columns(name) == list(getattr(datasets, f"load_{name}")(as_frame=True).frame.columns)


def test_column_kwargs_cover_every_gx_expectation_field_naming_columns():
    import great_expectations as gx

    from assets.spec.preflight import COLUMN_KWARGS, NOT_COLUMN_REFERENCES

    fields = {
        name
        for attr in dir(gx.expectations)
        if attr.startswith("Expect") and attr != "Expectation"
        for name in getattr(gx.expectations, attr).__fields__
        if "column" in name.lower()
    }
    assert fields == set(COLUMN_KWARGS) | set(NOT_COLUMN_REFERENCES)


def test_all_problems_are_reported_together(home, write_pipeline, defs_dir):
    text = (
        SHOP.replace("n_estimators: 10", "n_estimator: 10")
        .replace(
            "      source: {path: data/orders.csv}",
            "      source: {path: data/orders.csv}\n    late:\n      source: {path: data/late.csv}",
        )
        .replace("target: churned", "target: churn")
    )
    path = write_pipeline("shop", text, {"data/orders.csv": ORDERS})
    _fails(
        f"{path}:8: pipeline shop: dataset late: no file matches 'data/late.csv' (looked for "
        f"{path.parent}/data/late.csv); check the path, which is relative to the pipeline's folder\n"
        f"{path}:12: pipeline shop: model clf: target: column 'churn' is not in data/orders.csv (dataset orders); "
        "did you mean 'churned'?\n"
        f"{path}:14: pipeline shop: model clf: params: RandomForestClassifier has no parameter 'n_estimator'; "
        "did you mean 'n_estimators'?",
        defs_dir,
    )


def test_the_component_validates_its_attributes_with_the_pipeline_schema():
    from pydantic import ValidationError

    from assets.pipeline import Pipeline
    from assets.spec.schema import PipelineSpec

    assert Pipeline.get_model_cls() is PipelineSpec
    attributes = {"name": "shop", "datasets": {"orders": {"source": {"path": "x.csv"}, "colour": "red"}}}
    with pytest.raises(ValidationError, match=re.escape("datasets.orders.colour\n  Extra inputs are not permitted")):
        Pipeline.from_attributes_dict(attributes=attributes)


def test_gx_verdicts_are_kept_so_a_second_check_imports_no_gx(home):
    import subprocess
    import sys

    code = (
        "import sys\nfrom resources.validator import GreatExpectationsValidator as V\n"
        "from resources.errors import DefinitionError\nv = V()\nv.check('column_values_to_not_be_null', {'column': 'a'}, 'here')\n"
        "try:\n    v.check('column_values_to_be_between', {'colum': 'a'}, 'there')\nexcept DefinitionError as e:\n    print(e)\n"
        "print('great_expectations' in sys.modules)\n"
    )
    env = {**__import__("os").environ, "SLIPWAY_HOME": str(home)}
    first, second = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
        for _ in range(2)
    )
    refused = (
        "there: expectation column_values_to_be_between: column: field required; colum: extra fields not permitted; "
        "min_value and max_value cannot both be None"
    )
    assert first.splitlines() == [refused, "True"]
    assert second.splitlines() == [refused, "False"]  # the same verdicts, from the cache


def test_an_installed_estimators_signature_is_kept_and_a_project_ones_never(home, tmp_path, monkeypatch):
    import subprocess
    import sys

    code = (
        "import sys\nfrom assets.spec.signatures import estimator_signature as s\n"
        "print(s('sklearn.linear_model.Ridge', ['sklearn'], 'here').accepted[:2])\n"
        "print('sklearn.linear_model' in sys.modules)\n"
    )
    env = {**__import__("os").environ, "SLIPWAY_HOME": str(home)}
    first, second = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
        for _ in range(2)
    )
    assert first.splitlines() == ["['alpha', 'fit_intercept']", "True"]
    assert second.splitlines() == ["['alpha', 'fit_intercept']", "False"]  # from the cache: nothing imported

    from assets.spec.signatures import _installed

    (tmp_path / "mymodels.py").write_text("class M:\n    def fit(self, x, y): ...\n    def predict(self, x): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _installed("mymodels.M") is None  # the project's code: always imported
