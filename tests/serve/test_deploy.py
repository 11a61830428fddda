"""The model_deployer role: which models the stack serves, where, and the URL on each model's Dagster page."""

from __future__ import annotations

import dagster as dg

from definitions.cli.dev import commands, served
from definitions.definitions import build_definitions
from stacks import load_stack

PIPELINE = """
type: assets.Pipeline
attributes:
  name: {name}
  datasets:
    orders: {{source: {{path: data/*.csv}}}}
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.tree.DecisionTreeClassifier
      metrics: [roc_auc]
      serve: {{canary: {{alias: challenger, weight: 5}}}}
    plain:
      dataset: orders
      target: churned
      estimator: sklearn.tree.DecisionTreeClassifier
      metrics: [roc_auc]
"""


def _metadata(defs_dir, key: str) -> dict:
    graph = build_definitions(defs_dir).resolve_asset_graph()
    return dict(graph.get(dg.AssetKey.from_user_string(key)).metadata)


def test_a_local_deployer_serves_each_declared_model_beside_the_uis_and_shows_its_url(
    home, defs_dir, write_pipeline, monkeypatch
):
    write_pipeline("shop", PIPELINE.format(name="shop"))
    write_pipeline("bank", PIPELINE.format(name="bank"))
    monkeypatch.setenv("SLIPWAY_DEFS", str(defs_dir))
    monkeypatch.setenv("SLIPWAY_MODEL_DEPLOYER__TYPE", "local")
    monkeypatch.setenv("SLIPWAY_MODEL_DEPLOYER__FIRST_PORT", "6100")
    loaded = load_stack()
    lines = served(loaded)
    assert [line[3:] for line in lines] == [
        ["serve", "bank.clf", "--host", "127.0.0.1", "--port", "6100"],
        ["serve", "shop.clf", "--host", "127.0.0.1", "--port", "6101"],
    ]
    assert commands(loaded, 3000, 5000)[2:] == lines  # started (and stopped) with the UIs
    shop = _metadata(defs_dir, "shop/clf")
    assert shop["served_at"].value == "http://127.0.0.1:6101/invocations"
    assert "served_at" not in _metadata(defs_dir, "shop/plain")


def test_no_deployer_serves_nothing_and_kubernetes_names_the_service(home, defs_dir, write_pipeline, monkeypatch):
    write_pipeline("shop", PIPELINE.format(name="shop"))
    monkeypatch.setenv("SLIPWAY_DEFS", str(defs_dir))
    assert served(load_stack()) == [] and "served_at" not in _metadata(defs_dir, "shop/clf")
    monkeypatch.setenv("SLIPWAY_MODEL_DEPLOYER__TYPE", "kubernetes")
    assert served(load_stack()) == []
    assert _metadata(defs_dir, "shop/clf")["served_at"].value == "http://slipway-serve-shop-clf:8080/invocations"
