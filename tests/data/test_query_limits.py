"""A derived dataset's query ends: a time and a memory limit (the stack's, or the dataset's own), one line when hit."""

from __future__ import annotations

import pytest
from graph_cases import CRM, failed_details, shop

from assets.data.generators import churn
from assets.spec.schema import Dataset
from assets.spec.versions import code_version
from definitions.cli.runner import run
from resources.errors import DataError, DefinitionError
from resources.query import DuckdbEngine
from stacks import load_stack

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

ENDLESS = "with recursive r(n) as (select 1 union all select n + 1 from r) select count(*) as n from r"
GREEDY = "select list(range) as l from range(100000000)"  # 800 MB in one value


@pytest.fixture
def crm(write_pipeline, monkeypatch):
    return write_pipeline("crm", CRM, {"data/customers.csv": churn(60, seed=1)})


def test_a_query_without_end_is_stopped_at_the_stacks_time_limit(home, defs_dir, crm, write_pipeline, monkeypatch):
    monkeypatch.setenv("SLIPWAY_QUERY_ENGINE__TIMEOUT_SECONDS", "1.5")
    path = shop(write_pipeline, f"a:\n  inputs: [crm/customers]\n  sql: {ENDLESS}\n")
    assert failed_details(run(defs_dir=defs_dir)) == {
        "shop/a": f"{path}:7: pipeline shop, dataset a: the query ran past its time limit (1.5 s) and was stopped; "
        "raise `limits.timeout` on the dataset, or `query_engine.timeout_seconds` in the stack"
    }


def test_a_dataset_sets_its_own_limits(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        f"""
        a:
          inputs: [crm/customers]
          sql: {ENDLESS}
          limits: {{timeout: 1s}}
        b:
          inputs: [crm/customers]
          sql: {GREEDY}
          limits: {{memory: 100MB}}
        """,
    )
    assert failed_details(run(defs_dir=defs_dir)) == {
        "shop/a": f"{path}:7: pipeline shop, dataset a: the query ran past its time limit (1 s) and was stopped; "
        "raise `limits.timeout` on the dataset, or `query_engine.timeout_seconds` in the stack",
        "shop/b": f"{path}:11: pipeline shop, dataset b: the query needed more than its memory limit (100MB) and "
        "was stopped; raise `limits.memory` on the dataset, or `query_engine.memory_limit` in the stack",
    }


def test_the_stack_has_sane_defaults_and_refuses_a_limit_it_cannot_read(monkeypatch):
    engine = load_stack().stack.query_engine
    assert (engine.type, engine.memory_limit, engine.timeout_seconds) == ("duckdb", "50%", 900)
    monkeypatch.setenv("SLIPWAY_QUERY_ENGINE__MEMORY_LIMIT", "lots")
    with pytest.raises(Exception, match="query_engine.memory_limit"):
        load_stack()


def test_limits_are_checked_and_do_not_change_the_code_version():
    plain = Dataset.model_validate({"inputs": ["x"], "sql": "select * from x"})
    limited = Dataset.model_validate(
        {"inputs": ["x"], "sql": "select * from x", "limits": {"memory": "8GB", "timeout": "2h"}}
    )
    assert code_version("dataset", plain) == code_version("dataset", limited)
    assert limited.limits is not None and limited.limits.timeout_seconds() == 7200
    with pytest.raises(ValueError, match="memory"):
        Dataset.model_validate({"inputs": ["x"], "sql": "select 1", "limits": {"memory": "a lot"}})
    with pytest.raises(ValueError, match="limits apply to a `sql` query"):
        Dataset.model_validate({"source": {"path": "x.csv"}, "limits": {"timeout": "1m"}})


def test_the_engine_stops_each_query_by_itself_and_stays_usable():
    engine = DuckdbEngine(memory_limit="200MB", timeout_seconds=60)
    with pytest.raises(DataError, match=r"time limit \(0.5 s\)"):
        engine.run(ENDLESS, {}, "here", timeout_seconds=0.5)
    with pytest.raises(DataError, match=r"memory limit \(200MB\)"):
        engine.run(GREEDY, {}, "here")
    assert engine.run("select 41 + 1 as x", {}, "here")["x"].tolist() == [42]
    with pytest.raises(DefinitionError, match="must be one query"):
        engine.run("select 1; select 2", {}, "here")
