"""Bad input to graph pipelines: each mistake is one line naming the file and line, and the fix.

`slipway validate` catches what needs no data (unknown references, cycles, a query that does not
parse, a transform that cannot take its inputs); `slipway run` the rest (a query the database
or DuckDB rejects, a transform that returns the wrong thing, a connection that fails).
"""

from __future__ import annotations

import logging
import textwrap

import pytest
from graph_cases import CRM, failed_details, shop, validate_error
from views import current_table

from assets.data.generators import churn
from definitions.cli.runner import run
from definitions.cli.validate import validate
from resources import database
from resources.errors import DataError, DefinitionError, ResourceError

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow


@pytest.fixture
def crm(write_pipeline, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    return write_pipeline("crm", CRM, {"data/customers.csv": churn(60, seed=1)})


def test_an_unknown_reference_to_another_pipeline_says_which_with_did_you_mean(home, defs_dir, crm, write_pipeline):
    path = shop(write_pipeline, "features:\n  inputs: [crm/custmers]\n  sql: select * from custmers\n")
    expected = f"{path}:6: pipeline shop: dataset features: unknown input 'crm/custmers'; did you mean 'crm/customers'?"
    assert validate_error(defs_dir) == expected
    # `slipway run` loads the code location, which says the same.
    with pytest.raises(DefinitionError) as info:
        run(defs_dir=defs_dir)
    assert str(info.value) == expected


def test_an_unknown_name_in_the_same_pipeline_and_a_model_as_input(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        """
        orders:
          inputs: [crm/customers]
          sql: select * from customers
        features:
          inputs: [order]
          sql: select * from order
        scored:
          inputs: [clf]
          sql: select * from clf
        """,
        """
        clf:
          dataset: orders
          evaluate_on: ordrs
          target: churned
          estimator: sklearn.linear_model.LogisticRegression
          metrics: [accuracy]
        """,
    )
    assert validate_error(defs_dir).splitlines() == [
        f"{path}:9: pipeline shop: datasets.features.inputs.0: unknown input 'order'; did you mean 'orders'?",
        f"{path}:12: pipeline shop: datasets.scored.inputs.0: input 'clf' is a model; only datasets (tables) can be read",
        f"{path}:17: pipeline shop: models.clf.evaluate_on: unknown evaluation dataset 'ordrs'; did you mean 'orders'?",
    ]


def test_a_cycle_is_printed(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        """
        a:
          inputs: [c]
          sql: select * from c
        b:
          inputs: [a]
          sql: select * from a
        c:
          inputs: [b, crm/customers]
          sql: select * from b
        """,
    )
    assert validate_error(defs_dir) == (
        f"{path}:6: pipeline shop: dataset a: a cycle: shop/a -> shop/c -> shop/b -> shop/a; an asset cannot read itself"
    )


HAND = """
import dagster as dg


@dg.asset(key=["team", "raw_events"], group_name="team")
def raw_events():
    import pandas as pd

    return pd.DataFrame({"customer_id": [0, 1, 2], "kind": ["a", "b", "a"]})
"""


def test_a_hand_written_asset_can_be_read_and_a_wrong_key_is_caught_by_validate(home, defs_dir, crm, write_pipeline):
    (defs_dir / "team").mkdir()
    (defs_dir / "team" / "assets.py").write_text(textwrap.dedent(HAND))
    path = shop(write_pipeline, "counts:\n  inputs: [team/raw_event]\n  sql: select count(*) as n from raw_event\n")
    assert validate_error(defs_dir) == (
        f"{path}:6: pipeline shop: dataset counts: unknown input 'team/raw_event'; did you mean 'team/raw_events'?"
    )
    shop(
        write_pipeline,
        "counts:\n  inputs: [team/raw_events]\n  sql: select kind, count(*) as n from raw_events group by kind\n",
    )
    validate(defs_dir=defs_dir)
    report = run(defs_dir=defs_dir, names=["shop"])
    assert {o.key: o.status for o in report.outcomes} == {"team/raw_events": "built", "shop/counts": "built"}


def test_a_query_that_does_not_parse_or_is_not_a_select_is_caught_by_validate(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        """
        a:
          inputs: [crm/customers]
          sql: selec * from customers
        b:
          inputs: [crm/customers]
          sql: delete from customers
        c:
          inputs: [crm/customers]
          sql: select 1; select 2
        """,
    )
    assert validate_error(defs_dir).splitlines() == [
        f'{path}:7: pipeline shop: dataset a: DuckDB rejected the query: Parser Error: syntax error at or near "selec"',
        f"{path}:10: pipeline shop: dataset b: `sql` must be a SELECT query (or WITH ... SELECT); found DELETE",
        f"{path}:13: pipeline shop: dataset c: `sql` must be one query; found 2 statements",
    ]


def test_a_transform_that_cannot_take_its_inputs_is_caught_by_validate(home, defs_dir, crm, write_pipeline):
    path = shop(write_pipeline, "a:\n  inputs: [crm/customers]\n  transform: transforms:wrong_arguments\n")
    assert validate_error(defs_dir) == (
        f"{path}:7: pipeline shop: dataset a: transform transforms:wrong_arguments is called with its inputs by name, "
        "wrong_arguments(customers=...), but it takes (features): missing a required argument: 'features'"
    )


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "a:\n  source: {path: data/x.csv}\n  inputs: [crm/customers]\n  sql: select 1\n",
            "datasets.a: a dataset needs exactly one of `source` or `inputs`",
        ),
        (
            "a:\n  inputs: [crm/customers]\n",
            "datasets.a: a dataset with `inputs` needs exactly one of `sql` or `transform`",
        ),
        (
            "a:\n  source: {sql: select 1, connection: 'postgresql://u:pw@db:5432/x'}\n",
            "datasets.a.source.connection: `connection` names an environment variable (e.g. CRM_DATABASE_URL) "
            "that holds the URL; a URL in YAML would put its password in git",
        ),
        (
            "a:\n  source: {sql: select 1}\n",
            "datasets.a.source: a `sql` source needs `connection`: the name of the environment variable with its URL",
        ),
        (
            "a:\n  inputs: [crm/customers, other/customers]\n  sql: select 1\n",
            "datasets.a.inputs: two inputs are both called 'customers' in the SQL and the transform (an input is "
            "called by the last part of its key); derive one of them under another name first",
        ),
        (
            "a:\n  source: {sql: select 1, connection: MLFLOW_TRACKING_URI}\n",
            "datasets.a.source.connection: `connection` MLFLOW_TRACKING_URI is a setting of Slipway, Dagster or "
            "MLflow (their own stores), not a data source; name a variable of your own",
        ),
    ],
    ids=["source-and-inputs", "inputs-without-sql", "url-in-yaml", "sql-without-connection", "same-name", "own-store"],
)
def test_schema_mistakes_of_graph_datasets(home, defs_dir, crm, write_pipeline, yaml, message):
    path = shop(write_pipeline, yaml)
    error = validate_error(defs_dir)
    assert error.startswith(f"{path}:") and error.endswith(f": pipeline shop: {message}")
    assert "pw@" not in error


def test_run_time_mistakes_of_derived_datasets_say_which(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        """
        a:
          inputs: [crm/customers]
          sql: select nope from customers
        b:
          inputs: [crm/customers]
          sql: select * from custmers
        c:
          inputs: [crm/customers]
          transform: transforms:a_number
        d:
          inputs: [crm/customers]
          transform: transforms:drop_tenure
          expectations:
            - {expect: column_values_to_be_between, column: tenure, min_value: 0}
        """,
    )
    failed = failed_details(run(defs_dir=defs_dir))
    assert failed == {
        "shop/a": f"{path}:7: pipeline shop, dataset a: DuckDB rejected the query: Binder Error: "
        'Referenced column "nope" not found in FROM clause! Candidate bindings: "customer_id"',
        "shop/b": f"{path}:10: pipeline shop, dataset b: DuckDB rejected the query: Catalog Error: "
        "Table with name custmers does not exist! (the query reads its inputs by name: customers)",
        "shop/c": f"{path}:13: pipeline shop, dataset c: "
        "transform transforms:a_number returned an object of type int, not a pandas DataFrame",
        "shop/d": f"{path}:14: pipeline shop, dataset d: the table that transform transforms:drop_tenure "
        "returned has no column 'tenure' (needed by expectation column_values_to_be_between); "
        "it has customer_id, monthly_charges, support_calls, contract_months, churned",
    }


def test_sql_cannot_read_files_or_the_callers_variables(home, defs_dir, crm, write_pipeline, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    shop(
        write_pipeline,
        f"""
        a:
          inputs: [crm/customers]
          sql: select * from read_csv('{secret}')
        b:
          inputs: [crm/customers]
          sql: select * from frames
        """,
    )
    failed = failed_details(run(defs_dir=defs_dir))
    assert "file system operations are disabled by configuration" in failed["shop/a"]
    assert "Table with name frames does not exist!" in failed["shop/b"]


ACCOUNTS = 'accounts:\n  source: {sql: "select customer_id, plan from acounts", connection: SHOP_DB_URL}\n'


def test_a_missing_connection_variable_names_it(home, defs_dir, crm, write_pipeline, monkeypatch):
    monkeypatch.delenv("SHOP_DB_URL", raising=False)
    path = shop(write_pipeline, ACCOUNTS)
    with pytest.raises(DefinitionError) as info:
        run(defs_dir=defs_dir)
    assert str(info.value) == (
        f"{path}:6: pipeline shop, dataset accounts: environment variable SHOP_DB_URL is not set (or is empty); it must hold "
        "the database URL (such as postgresql://host:5432/name, with the user and password in it)"
    )


def test_a_connection_that_fails_names_host_and_port_never_the_password_after_bounded_retries(
    home, defs_dir, crm, write_pipeline, monkeypatch, caplog
):
    from mlflow_server import free_port

    assert database.give_up_within() == 27  # 4 attempts of at most 5 s, 1 + 2 + 4 s between them
    port = free_port()
    monkeypatch.setenv("SHOP_DB_URL", f"postgresql://bob:hunter2@127.0.0.1:{port}/shop")
    monkeypatch.setattr(database, "BACKOFF", 0.01)
    path = shop(write_pipeline, ACCOUNTS)
    with caplog.at_level(logging.WARNING, logger="slipway.progress"), pytest.raises(ResourceError) as info:
        run(defs_dir=defs_dir)
    refused = f'connection to server at "127.0.0.1", port {port} failed: Connection refused'
    assert str(info.value) == (
        f"{path}:6: pipeline shop, dataset accounts: cannot connect to the database at 127.0.0.1:{port}/shop "
        f"(SHOP_DB_URL) after 4 attempts: {refused}"
    )
    retries = [r.getMessage() for r in caplog.records if r.name == "slipway.progress"]
    assert retries == [
        f"database 127.0.0.1:{port}/shop (SHOP_DB_URL): {refused}; retrying, attempt {n} of 4 (gives up within {database.give_up_within():.0f} s)"
        for n in (2, 3, 4)
    ]
    assert "hunter2" not in str(info.value) + "".join(retries)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained error shows the URL


def test_a_query_the_database_rejects_is_one_line_with_its_message(home, defs_dir, crm, write_pipeline, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    path = shop(write_pipeline, ACCOUNTS)
    with pytest.raises(DataError) as info:
        run(defs_dir=defs_dir)
    assert str(info.value) == (
        f'{path}:6: pipeline shop, dataset accounts: the database rejected the query: relation "acounts" does not exist'
    )


def test_a_database_that_does_not_exist_is_not_retried(home, defs_dir, crm, write_pipeline, monkeypatch, caplog):
    monkeypatch.setenv("SHOP_DB_URL", "postgresql://postgres:hunter2@127.0.0.1:5432/no_such_database")
    path = shop(write_pipeline, ACCOUNTS)
    with caplog.at_level(logging.WARNING, logger="slipway.progress"), pytest.raises(ResourceError) as info:
        run(defs_dir=defs_dir)
    assert str(info.value) == (
        f"{path}:6: pipeline shop, dataset accounts: cannot connect to the database at "
        '127.0.0.1:5432/no_such_database (SHOP_DB_URL): FATAL:  database "no_such_database" does not exist'
    )
    assert not [r for r in caplog.records if r.name == "slipway.progress"]  # waiting would not help


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "delete from accounts",
            "`sql` of a database source must be a query (SELECT or WITH ... SELECT); found DELETE",
        ),
        (
            "with gone as (delete from accounts returning *) select * from gone",
            "the database rejected the query: cannot execute SELECT in a read-only transaction",  # PostgreSQL's words
        ),
    ],
    ids=["not-a-select", "writing-cte"],
)
def test_a_database_source_only_reads(home, monkeypatch, query, message):
    import psycopg2

    monkeypatch.setenv("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute("drop table if exists accounts; create table accounts (customer_id int, plan text)")
    admin.cursor().execute("insert into accounts values (1, 'basic'), (2, 'premium')")
    try:
        with pytest.raises((DataError, DefinitionError)) as info:
            database.read("SHOP_DB_URL", query, "here")
        assert str(info.value) == f"here: {message}"
        with pytest.raises((DataError, DefinitionError)):  # observing it writes nothing either
            database.fingerprint("SHOP_DB_URL", query, "here")
        cursor = admin.cursor()
        cursor.execute("select count(*) from accounts")
        assert cursor.fetchone()[0] == 2
    finally:
        admin.cursor().execute("drop table if exists accounts")
        admin.close()


def test_an_evaluation_set_that_is_the_training_dataset_by_another_name(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        "orders:\n  inputs: [crm/customers]\n  sql: select * from customers\n",
        """
        clf:
          dataset: orders
          evaluate_on: shop/orders
          target: churned
          estimator: sklearn.linear_model.LogisticRegression
          metrics: [accuracy]
        """,
    )
    assert validate_error(defs_dir) == (
        f"{path}:11: pipeline shop: models.clf.evaluate_on: `evaluate_on` names the training dataset 'orders'; "
        "name a held-out one"
    )


def test_validate_refuses_a_database_source_that_is_not_a_query(home, defs_dir, crm, write_pipeline):
    path = shop(write_pipeline, 'accounts:\n  source: {sql: "drop table accounts", connection: SHOP_DB_URL}\n')
    assert validate_error(defs_dir) == (
        f"{path}:6: pipeline shop: dataset accounts: `sql` of a database source must be a query (SELECT or WITH ... SELECT); found DROP"
    )


def test_a_rejected_query_materialized_from_the_ui_names_its_line(home, defs_dir, crm, write_pipeline, monkeypatch):
    """The UI materializes without `slipway run`'s observation first: the step's own error is as precise."""
    from views import ui_materialize

    monkeypatch.setenv("SHOP_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    path = shop(write_pipeline, ACCOUNTS)
    result = ui_materialize(defs_dir, "shop/accounts")
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_failure_data.error.cause.message.strip().endswith(
        f'{path}:6: pipeline shop, dataset accounts: the database rejected the query: relation "acounts" does not exist'
    )


CYCLE_HAND = """
import dagster as dg


@dg.asset(key=["team", "raw"], group_name="team", deps=[dg.AssetKey(["shop", "a"])])
def raw():
    import pandas as pd

    return pd.DataFrame({"x": [1]})
"""


def test_a_cycle_through_a_hand_written_asset_is_printed(home, defs_dir, crm, write_pipeline):
    (defs_dir / "team").mkdir()
    (defs_dir / "team" / "assets.py").write_text(textwrap.dedent(CYCLE_HAND))
    path = shop(write_pipeline, "a:\n  inputs: [team/raw]\n  sql: select * from raw\n")
    expected = f"{path}:6: pipeline shop: dataset a: a cycle: shop/a -> team/raw -> shop/a; an asset cannot read itself"
    assert validate_error(defs_dir) == expected
    with pytest.raises(DefinitionError) as info:
        run(defs_dir=defs_dir)
    assert str(info.value) == expected


def test_a_transforms_index_is_kept_as_columns_not_dropped(home, defs_dir, crm, write_pipeline):
    shop(write_pipeline, "totals:\n  inputs: [crm/customers]\n  transform: transforms:totals_by_customer\n")
    assert run(defs_dir=defs_dir).ok
    stored = current_table("shop/totals")
    assert list(stored.columns) == ["customer_id", "tenure"] and len(stored) == 60


def test_a_transform_that_raises_names_itself(home, defs_dir, crm, write_pipeline):
    path = shop(write_pipeline, "a:\n  inputs: [crm/customers]\n  transform: transforms:missing_column\n")
    assert failed_details(run(defs_dir=defs_dir)) == {
        "shop/a": f"{path}:7: pipeline shop, dataset a: transform transforms:missing_column raised KeyError: 'no_such_col'"
    }


def test_a_transform_module_that_fails_to_import_is_one_line(home, defs_dir, crm, write_pipeline, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms", "broken_transforms"]')
    path = shop(write_pipeline, "a:\n  inputs: [crm/customers]\n  transform: broken_transforms:anything\n")
    assert validate_error(defs_dir) == (
        f"{path}:7: pipeline shop: cannot import 'broken_transforms:anything': "
        "RuntimeError: boom at import (broken_transforms.py, line 3)"
    )


def test_running_one_pipeline_is_not_stopped_by_a_database_source_it_does_not_read(
    home, defs_dir, write_pipeline, monkeypatch
):
    monkeypatch.delenv("UNUSED_DB_URL", raising=False)
    write_pipeline(
        "crm",
        CRM + '    accounts:\n      source: {sql: "select 1 as x", connection: UNUSED_DB_URL}\n',
        {"data/customers.csv": churn(60, seed=1)},
    )
    shop(write_pipeline, "a:\n  inputs: [crm/customers]\n  sql: select * from customers\n")
    report = run(defs_dir=defs_dir, names=["shop"])
    assert {o.key: o.status for o in report.outcomes} == {"crm/customers": "built", "shop/a": "built"}


def test_index_levels_become_columns_only_when_named_and_never_twice(home, defs_dir, crm, write_pipeline):

    shop(
        write_pipeline,
        """
        ranked:
          inputs: [crm/customers]
          transform: transforms:ranked
        twice:
          inputs: [crm/customers]
          transform: transforms:indexed_twice
        """,
    )
    assert run(defs_dir=defs_dir).ok
    assert list(current_table("shop/ranked").columns) == ["contract_months", "tenure"]
    assert list(current_table("shop/twice").columns) == list(churn(60, seed=1).columns)


def test_a_transform_failing_with_a_password_in_its_message_hides_it(home, defs_dir, crm, write_pipeline):
    path = shop(write_pipeline, "a:\n  inputs: [crm/customers]\n  transform: transforms:secret_failure\n")
    assert failed_details(run(defs_dir=defs_dir)) == {
        "shop/a": f"{path}:7: pipeline shop, dataset a: transform transforms:secret_failure raised RuntimeError: "
        "cannot reach postgresql://bob:***@db.example:5432/crm"
    }


def test_an_input_called_like_the_wrappers_own_parameters(home, defs_dir, write_pipeline, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    write_pipeline("crm", CRM.replace("customers:", "path:"), {"data/customers.csv": churn(60, seed=1)})
    shop(write_pipeline, "a:\n  inputs: [crm/path]\n  transform: transforms:path\n")
    assert {o.key: o.status for o in run(defs_dir=defs_dir).outcomes} == {"crm/path": "built", "shop/a": "built"}


def test_a_module_that_exits_when_imported_is_one_line(home, defs_dir, crm, write_pipeline, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms", "exiting_transforms"]')
    path = shop(write_pipeline, "a:\n  inputs: [crm/customers]\n  transform: exiting_transforms:anything\n")
    assert validate_error(defs_dir) == (
        f"{path}:7: pipeline shop: cannot import 'exiting_transforms:anything': SystemExit: 3 (exiting_transforms.py, line 5)"
    )


HAND_READS_CRM = """
import dagster as dg


@dg.asset(key=["hand", "customers"], group_name="hand", ins={"customers": dg.AssetIn(key=["crm", "customers"])})
def customers(customers):
    return customers
"""


def test_running_one_pipeline_sees_new_data_read_through_a_hand_written_asset(home, defs_dir, crm, write_pipeline):
    (defs_dir / "hand").mkdir()
    (defs_dir / "hand" / "assets.py").write_text(textwrap.dedent(HAND_READS_CRM))
    shop(write_pipeline, "a:\n  inputs: [hand/customers]\n  sql: select count(*) as n from customers\n")
    assert run(defs_dir=defs_dir, names=["shop"]).ok
    assert {o.status for o in run(defs_dir=defs_dir, names=["shop"]).outcomes} == {"reused"}
    churn(80, seed=2).to_csv(defs_dir / "crm" / "data" / "customers.csv", index=False)
    statuses = {o.key: o.status for o in run(defs_dir=defs_dir, names=["shop"]).outcomes}
    assert statuses == {"crm/customers": "built", "hand/customers": "built", "shop/a": "built"}
