"""`slipway validate`, `slipway plan` and `slipway run` refuse the same definitions with the same lines.

One table of bad definitions, each a change to a good pipeline committed in a git repository:
validate refuses it, plan refuses it (on the working tree, and on a committed revision as CI
runs it, `BASE..HEAD`), and run refuses it before building anything.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from gitrepo import commit_all, init
from test_cli import slipway

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

CRM = """\
type: assets.Pipeline
attributes:
  name: crm
  datasets:
    customers:
      source: {path: data/customers.csv}
"""

SHOP = """\
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      inputs: [crm/customers]
      sql: select * from customers
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 5, max_depth: 3}
      metrics: [accuracy]
"""

# name: (old text, new text, the error line, with PATH for the shop file)
BAD = {
    "unknown-input": (
        "inputs: [crm/customers]",
        "inputs: [crm/custmers]",
        "PATH:6: pipeline shop: dataset orders: unknown input 'crm/custmers'; did you mean 'crm/customers'?",
    ),
    "sql-delete": (
        "sql: select * from customers",
        "sql: delete from customers",
        "PATH:7: pipeline shop: dataset orders: `sql` must be a SELECT query (or WITH ... SELECT); found DELETE",
    ),
    "sql-create": (
        "sql: select * from customers",
        "sql: create table t as select * from customers",
        "PATH:7: pipeline shop: dataset orders: `sql` must be a SELECT query (or WITH ... SELECT); found CREATE",
    ),
    "two-statements": (
        "sql: select * from customers",
        "sql: select * from customers; select 1",
        "PATH:7: pipeline shop: dataset orders: `sql` must be one query; found 2 statements",
    ),
    "param-misspelled": (
        "max_depth: 3",
        "max_dept: 3",
        "PATH:13: pipeline shop: model clf: params: RandomForestClassifier has no parameter 'max_dept'; "
        "did you mean 'max_depth'?",
    ),
    "transform-arguments": (
        "sql: select * from customers",
        "transform: transforms:wrong_arguments",
        "PATH:7: pipeline shop: dataset orders: transform transforms:wrong_arguments is called with its inputs "
        "by name, wrong_arguments(customers=...), but it takes (features): missing a required argument: 'features'",
    ),
}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    (root / "defs" / "crm" / "data").mkdir(parents=True)
    (root / "defs" / "shop").mkdir(parents=True)
    (root / "defs" / "crm" / "defs.yaml").write_text(CRM)
    rows = pd.DataFrame({"customer_id": range(40), "tenure": range(40), "churned": [i % 2 for i in range(40)]})
    rows.to_csv(root / "defs" / "crm" / "data" / "customers.csv", index=False)
    (root / "defs" / "shop" / "defs.yaml").write_text(SHOP)
    init(root)
    return root


ENV = {"SLIPWAY_ALLOWED_IMPORTS": '["sklearn", "transforms"]', "PYTHONPATH": str(Path(__file__).parents[1])}


def _errors(result) -> list[str]:  # noqa: ANN001
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("case", BAD, ids=BAD)
def test_validate_plan_and_run_refuse_the_same_definition_with_the_same_line(repo, home, case):
    old, new, line = BAD[case]
    shop = repo / "defs" / "shop" / "defs.yaml"
    shop.write_text(SHOP.replace(old, new))
    expected = [f"error: {line.replace('PATH', str(shop))}"]
    defs = str(repo / "defs")
    assert _errors(slipway("--defs", defs, "validate", home=home, env=ENV)) == expected
    assert _errors(slipway("--defs", defs, "plan", home=home, env=ENV)) == expected
    ran = slipway("--defs", defs, "run", home=home, env=ENV)
    assert _errors(ran) == expected
    assert not (home / "artifacts").exists() or not any((home / "artifacts").rglob("*.parquet"))  # nothing built

    # As CI runs it: the change committed, plan of the base branch against HEAD.
    commit_all(repo, "bad change")
    committed = _errors(slipway("--defs", defs, "plan", "HEAD~1..HEAD", home=home, env=ENV))
    assert committed == expected
