"""The pipeline schema and loader: valid files load, bad ones fail with path:line messages."""

from __future__ import annotations

import re

import pytest

from assets.spec.loader import load_pipelines, parse_file
from assets.spec.versions import code_version
from resources.errors import DefinitionError

GOOD = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {generator: churn, rows: 200, seed: 1}
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.linear_model.LogisticRegression
      metrics: [roc_auc]
      promote: {gates: {roc_auc: ">= 0.6"}}
    other:
      dataset: orders
      target: churned
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3}
      metrics: [accuracy]
"""


def test_good_file_loads(write_pipeline, defs_dir):
    path = write_pipeline("shop", GOOD)
    loaded = parse_file(path)
    assert loaded.spec.name == "shop"
    assert loaded.spec.models["clf"].promote.alias == "champion"
    assert loaded.spec.models["clf"].resolved_task == "classification"
    assert [p.spec.name for p in load_pipelines(defs_dir)] == ["shop"]


def test_changing_one_model_changes_only_its_code_version(write_pipeline):
    before = parse_file(write_pipeline("shop", GOOD)).spec
    after = parse_file(write_pipeline("shop", GOOD.replace("max_depth: 3", "max_depth: 4"))).spec
    assert code_version("model", before.models["other"]) != code_version("model", after.models["other"])
    assert code_version("model", before.models["clf"]) == code_version("model", after.models["clf"])
    assert code_version("dataset", before.datasets["orders"]) == code_version("dataset", after.datasets["orders"])


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "metrics: [roc_auc]",
            "metrics: [roc_auk]",
            "defs.yaml:8: pipeline shop: models.clf: unknown metric 'roc_auk'; did you mean 'roc_auc'?",
        ),
        (
            "      target: churned\n      estimator: sklearn.linear_model",
            "      colour: red\n      target: churned\n      estimator: sklearn.linear_model",
            "defs.yaml:10: pipeline shop: models.clf: unknown key 'colour'; valid: dataset, description, estimator, evaluate_on, features, metrics, params, promote, resources, retrain, serve, split, sweep, target, task, train, window",
        ),
        (
            "rows: 200",
            "rows: many",
            "defs.yaml:6: pipeline shop: datasets.orders.source.rows: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            "{generator: churn, rows: 200, seed: 1}",
            "{path: a.csv, sklearn: iris}",
            "defs.yaml:6: pipeline shop: datasets.orders.source: a source needs exactly one of `path`, `sklearn`, `generator` or `sql`",
        ),
        (
            '">= 0.6"',
            '"about 0.6"',
            'defs.yaml:13: pipeline shop: models.clf.promote.gates: gate roc_auc: "about 0.6" is not a condition like ">= 0.75"',
        ),
        (
            "      dataset: orders\n      target: churned\n      estimator: sklearn.linear_model",
            "      dataset: order\n      target: churned\n      estimator: sklearn.linear_model",
            "defs.yaml:9: pipeline shop: models.clf.dataset: unknown dataset 'order'; did you mean 'orders'?",
        ),
        (
            "      target: churned\n      estimator: sklearn.linear_model",
            "      estimator: sklearn.linear_model",
            "defs.yaml:8: pipeline shop: models.clf: missing required key 'target'",
        ),
        (
            "      params: {max_depth: 3}",
            "      param: {max_depth: 3}",
            "defs.yaml:18: pipeline shop: models.other: unknown key 'param'; did you mean 'params'?",
        ),
        (
            'promote: {gates: {roc_auc: ">= 0.6"}}',
            'promote: {gate: {roc_auc: ">= 0.6"}}',
            "defs.yaml:13: pipeline shop: models.clf.promote: unknown key 'gate'; did you mean 'gates'?",
        ),
    ],
    ids=[
        "metric",
        "unknown-key",
        "wrong-type",
        "source-kind",
        "gate",
        "dataset-ref",
        "missing",
        "did-you-mean",
        "nested",
    ],
)
def test_errors_name_file_line_and_fix(write_pipeline, old, new, expected):
    assert old in GOOD
    path = write_pipeline("shop", GOOD.replace(old, new, 1))
    with pytest.raises(DefinitionError) as info:
        parse_file(path)
    assert str(info.value) == f"{path.parent}/{expected}"


def test_malformed_yaml_names_line(write_pipeline):
    path = write_pipeline("shop", GOOD.replace("  datasets:", "  datasets: [unclosed"))
    with pytest.raises(DefinitionError, match=re.escape(f"{path}:") + r"\d+: malformed YAML"):
        parse_file(path)


def test_wrong_component_type(write_pipeline):
    path = write_pipeline("shop", GOOD.replace("assets.Pipeline", "assets.Pipe"))
    with pytest.raises(
        DefinitionError, match=re.escape(f"{path}:1: unknown component type 'assets.Pipe'; use `type: assets.Pipeline`")
    ):
        parse_file(path)


def test_duplicate_pipeline_names(write_pipeline, defs_dir):
    write_pipeline("a", GOOD)
    second = write_pipeline("b", GOOD)
    with pytest.raises(DefinitionError, match=re.escape(f"{second}:3: pipeline name 'shop' is also used by")):
        load_pipelines(defs_dir)


def test_editing_project_code_changes_the_code_version(tmp_path, monkeypatch):
    from assets.spec.schema import Dataset

    package = tmp_path / "shopcode"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "clean.py").write_text("def fix(df):\n    return df\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    dataset = Dataset.model_validate({"source": {"path": "a.csv"}, "transform": "shopcode.clean:fix"})
    before = code_version("dataset", dataset)
    assert code_version("dataset", dataset) == before
    (package / "clean.py").write_text("def fix(df):\n    return df.dropna()\n")
    assert code_version("dataset", dataset) != before
    # Installed libraries are pinned by the lock file, not hashed; the project's own code is.
    from assets.spec.versions import source_digest

    assert source_digest("sklearn.utils:shuffle") is None
    assert source_digest("os:system") is None
    assert source_digest("definitions.custom:add_ratios") is not None
