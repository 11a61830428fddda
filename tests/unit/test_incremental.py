"""The incremental plan: what is reused and why, from YAML, file bytes and the ledger alone."""

from __future__ import annotations

import sys

from assets.generators import churn
from assets.loader import parse_file
from definitions.incremental import plan
from definitions.ledger import Ledger

PIPELINE = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/*.csv}
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.tree.DecisionTreeClassifier
      metrics: [accuracy]
"""


def _built(ledger, artifacts, plans, run_id="run1"):
    """Record every planned asset as built by ``run_id`` (what the runner does after a run)."""
    for item in plans:
        ledger.put(
            item.key,
            {
                "code_version": item.code_version,
                "fingerprint": item.fingerprint,
                "run_id": run_id,
                "data_version": "dv1" if item.kind == "dataset" else None,
                "upstream_data_version": "dv1" if item.kind == "model" else None,
                "model_version": "1",
            },
        )
        folder = artifacts.joinpath(*item.key.split("/"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "LATEST").write_text(f"{run_id}.parquet")


def test_reuse_and_reasons(tmp_path, write_pipeline):
    path = write_pipeline("shop", PIPELINE, {"data/a.csv": churn(50)})
    loaded = [parse_file(path)]
    ledger, artifacts = Ledger(tmp_path / "ledger.json"), tmp_path / "artifacts"

    first = plan(loaded, ledger, artifacts, force=False)
    assert [(p.key, p.reuse, p.reason) for p in first] == [
        ("shop/orders", False, "never built"),
        ("shop/clf", False, "never built"),
    ]
    _built(ledger, artifacts, first)
    assert [(p.reuse, p.reason) for p in plan(loaded, ledger, artifacts, force=False)] == [
        (True, "unchanged"),
        (True, "unchanged"),
    ]
    assert [p.reason for p in plan(loaded, ledger, artifacts, force=True)] == ["--force", "--force"]

    churn(10, seed=5).to_csv(path.parent / "data" / "b.csv", index=False)
    assert [p.reason for p in plan(loaded, ledger, artifacts, force=False)] == [
        "input data changed",
        "shop/orders is rebuilt",
    ]
    (path.parent / "data" / "b.csv").unlink()

    (artifacts / "shop" / "orders" / "LATEST").write_text("run2.parquet")  # a later, failed build
    assert plan(loaded, ledger, artifacts, force=False)[0].reason == "stored data is not the last good build"
    (artifacts / "shop" / "orders" / "LATEST").write_text("run1.parquet")

    changed = [parse_file(write_pipeline("shop", PIPELINE.replace("metrics: [accuracy]", "metrics: [f1]")))]
    assert [(p.reuse, p.reason) for p in plan(changed, ledger, artifacts, force=False)] == [
        (True, "unchanged"),
        (False, "definition changed"),
    ]


def test_plan_imports_nothing_heavy(tmp_path, write_pipeline):
    path = write_pipeline("shop", PIPELINE, {"data/a.csv": churn(20)})
    code = (
        "import sys; from pathlib import Path; from assets.loader import parse_file; "
        "from definitions.incremental import plan; from definitions.ledger import Ledger; "
        "from stacks import load_stack; load_stack(); "
        f"plan([parse_file(Path({str(path)!r}))], Ledger(Path({str(tmp_path / 'l.json')!r})), Path('.'), False); "
        "print(sorted(m for m in ('dagster', 'mlflow', 'sklearn', 'great_expectations') if m in sys.modules))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_corrupt_ledger_means_rebuild(tmp_path, write_pipeline):
    loaded = [parse_file(write_pipeline("shop", PIPELINE, {"data/a.csv": churn(50)}))]
    path, artifacts = tmp_path / "ledger.json", tmp_path / "artifacts"
    ledger = Ledger(path)
    _built(ledger, artifacts, plan(loaded, ledger, artifacts, force=False))
    ledger.save()
    assert [p.reuse for p in plan(loaded, Ledger(path), artifacts, force=False)] == [True, True]

    path.write_text(path.read_text()[:40])  # cut short, as by a full disk
    assert [(p.reuse, p.reason) for p in plan(loaded, Ledger(path), artifacts, force=False)] == [
        (False, "never built"),
        (False, "never built"),
    ]
    rewritten = Ledger(path)
    rewritten.put("shop/orders", {"code_version": "x"})
    rewritten.save()
    assert Ledger(path).get("shop/orders") == {"code_version": "x"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_one_run_per_home(tmp_path):
    import re

    import pytest

    from definitions.ledger import exclusive
    from resources.errors import SlipwayError

    with exclusive(tmp_path):
        with pytest.raises(SlipwayError, match=re.escape(f"another `slipway run` is using {tmp_path}; wait")):
            with exclusive(tmp_path):
                pass
    with exclusive(tmp_path):  # released afterwards
        pass
