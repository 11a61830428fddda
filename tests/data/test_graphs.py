"""Pipelines as graphs: derived datasets (SQL, Python), references across pipelines, a Postgres
source and an evaluation set, end to end on the local stack, with versions flowing along edges.

The Postgres source reads a scratch database created on the local service (127.0.0.1:5432)
for each test and dropped after it.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from views import automation_requests, current_table

from assets.data.generators import churn
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

CRM = """
type: assets.Pipeline
attributes:
  name: crm
  datasets:
    customers:
      source: {path: data/customers.csv}
      expectations:
        - {expect: column_values_to_be_unique, column: customer_id}
    events:
      source: {path: data/events*.csv}
"""

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    accounts:
      source: {sql: "select customer_id, plan from accounts order by customer_id", connection: SHOP_DB_URL}
    features:
      inputs: [crm/customers, crm/events, accounts]
      sql: |
        select c.*, coalesce(e.failed, 0) as failed_payments, a.plan
        from customers c
        left join (select customer_id, count(*) as failed from events
                   where kind = 'payment_failed' group by customer_id) e using (customer_id)
        left join accounts a using (customer_id)
        order by customer_id
      expectations:
        - {expect: column_values_to_not_be_null, column: failed_payments}
      drift: {method: ks, threshold: 0.5, columns: [tenure]}
    enriched:
      inputs: [features]
      transform: transforms:premium_flag
    training:
      inputs: [enriched]
      sql: select * from enriched where customer_id % 5 <> 0
    holdout:
      inputs: [enriched]
      sql: select * from enriched where customer_id % 5 = 0
  models:
    clf:
      dataset: training
      evaluate_on: holdout
      target: churned
      features: [tenure, monthly_charges, support_calls, contract_months, failed_payments, premium]
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 20, max_depth: 5, random_state: 0}
      metrics: [roc_auc]
      promote: {gates: {roc_auc: ">= 0.6"}}
"""

SHOP_KEYS = ["shop/accounts", "shop/features", "shop/enriched", "shop/holdout", "shop/training", "shop/clf"]


def events_for(customers: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Payment failures, more of them for customers who churn (so the feature carries signal)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.3 + 1.5 * customers["churned"].to_numpy())
    ids = np.repeat(customers["customer_id"].to_numpy(), counts)
    return pd.DataFrame({"customer_id": ids, "kind": "payment_failed", "day": rng.integers(0, 90, len(ids))})


@pytest.fixture
def database(monkeypatch):
    """A scratch database on the local PostgreSQL service with an ``accounts`` table; its URL in SHOP_DB_URL."""
    import psycopg2

    name = f"slipway_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"create database {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=name)
    connection.autocommit = True
    cursor = connection.cursor()
    cursor.execute("create table accounts (customer_id int primary key, plan text not null)")
    rows = [(i, "premium" if i % 3 == 0 else "basic") for i in range(600)]
    cursor.executemany("insert into accounts values (%s, %s)", rows)
    monkeypatch.setenv("SHOP_DB_URL", url)
    yield cursor
    connection.close()
    admin.cursor().execute(f"drop database if exists {name} with (force)")
    admin.close()


@pytest.fixture
def graph(write_pipeline, database, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    customers = churn(600, seed=1)
    write_pipeline("crm", CRM, {"data/customers.csv": customers, "data/events_000.csv": events_for(customers, 2)})
    write_pipeline("shop", SHOP)
    return customers


def _why(report) -> dict[str, tuple[str, str]]:
    """Each asset's status and why it was launched."""
    return {o.key: (o.status, o.reason) for o in report.outcomes}


def _statuses(report) -> dict[str, str]:
    return {o.key: o.status for o in report.outcomes}


def test_a_graph_pipeline_runs_end_to_end(home, defs_dir, graph):
    report = run(defs_dir=defs_dir)
    assert report.ok, _why(report)
    assert set(_statuses(report).values()) == {"built"}
    assert set(_statuses(report)) == {"crm/customers", "crm/events", *SHOP_KEYS}

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    version = client.get_model_version("shop.clf", "1")
    assert str(client.get_model_version_by_alias("shop.clf", "champion").version) == "1"
    # The model records both datasets it read, and was scored on the evaluation set.
    assert {"slipway.upstream.shop/training", "slipway.upstream.shop/holdout"} <= set(version.tags)
    assert '"evaluate_on": "holdout"' in version.tags["slipway.split"]

    assert "on 120 rows" not in version.tags["slipway.promotion"]  # no champion to compare with yet
    recorded = client.get_run(version.run_id)
    assert recorded.data.metrics["roc_auc"] > 0.6
    inputs = {d.dataset.name: (d.tags[0].value, d.dataset.digest) for d in recorded.inputs.dataset_inputs}
    assert inputs == {
        "shop/training": ("training", version.tags["slipway.upstream.shop/training"]),
        "shop/holdout": ("evaluation", version.tags["slipway.upstream.shop/holdout"]),
    }

    # The evaluation set is the SQL's rows (every fifth customer); the transform added its column
    # to the SQL's join with the Postgres table.
    holdout = current_table("shop/holdout")
    training = current_table("shop/training")
    enriched = current_table("shop/enriched")
    assert len(holdout) == 120 and (holdout["customer_id"] % 5 == 0).all()
    assert len(training) == 480 and not (training["customer_id"] % 5 == 0).any()
    assert {"failed_payments", "plan", "premium"} <= set(enriched.columns)
    assert (enriched["premium"] == (enriched["plan"] == "premium").astype(int)).all()
    assert (enriched["plan"] == "premium").sum() == 200  # every third of 600 accounts, read from Postgres

    again = run(defs_dir=defs_dir)
    assert set(_statuses(again).values()) == {"reused"}


def test_a_changed_database_table_rebuilds_exactly_the_chain_below_it(home, defs_dir, graph, database):
    run(defs_dir=defs_dir)
    database.execute("update accounts set plan = 'premium' where customer_id < 60")
    report = run(defs_dir=defs_dir)
    statuses = _statuses(report)
    assert {k: statuses[k] for k in ("crm/customers", "crm/events")} == {
        "crm/customers": "reused",
        "crm/events": "reused",
    }
    assert {statuses[k] for k in SHOP_KEYS} == {"built"}
    assert _why(report)["shop/accounts"] == ("built", "shop/accounts/query_accounts has new data")
    assert _why(report)["shop/features"] == ("built", "shop/accounts has new data")


def test_a_new_raw_batch_flows_along_every_edge_and_automation_agrees(home, defs_dir, graph):
    run(defs_dir=defs_dir)
    more = churn(50, seed=9, id_offset=10_000)
    events = events_for(more, 3)
    events.to_csv(defs_dir / "crm" / "data" / "events_001.csv", index=False)
    # Only the observed files changed: the sensor asks for the dataset that reads them, and
    # nothing below it until its new data version exists.
    from views import ui_observe

    ui_observe(defs_dir)
    assert automation_requests(defs_dir) == {"crm/events"}
    report = run(defs_dir=defs_dir)
    statuses = _statuses(report)
    assert statuses["crm/customers"] == "reused" and statuses["shop/accounts"] == "reused"
    assert statuses["crm/events"] == "built"
    # The new events belong to customers no table has: the join drops them, so features come
    # out with the same data version and nothing below it is rebuilt.
    assert statuses["shop/features"] == "built"
    assert {statuses[k] for k in ("shop/enriched", "shop/training", "shop/holdout", "shop/clf")} == {"reused"}
    assert automation_requests(defs_dir) == set()

    # Events of known customers change the features, and so everything below them.
    pd.concat([events, events_for(graph.head(100), 4)]).to_csv(
        defs_dir / "crm" / "data" / "events_001.csv", index=False
    )
    report = run(defs_dir=defs_dir)
    statuses = _statuses(report)
    assert {statuses[k] for k in ("shop/features", "shop/enriched", "shop/training", "shop/holdout", "shop/clf")} == {
        "built"
    }
    assert statuses["crm/customers"] == "reused" and statuses["shop/accounts"] == "reused"
    assert automation_requests(defs_dir) == set()


def test_editing_sql_rebuilds_it_and_only_changed_data_goes_further(home, defs_dir, graph, write_pipeline):
    run(defs_dir=defs_dir)
    # The same rows by another query: the holdout is rebuilt, its data version is unchanged,
    # so the model it evaluates is not retrained.
    write_pipeline("shop", SHOP.replace("where customer_id % 5 = 0", "where (customer_id % 5) = 0"))
    assert automation_requests(defs_dir) == {"shop/holdout"}
    report = run(defs_dir=defs_dir)
    assert _why(report)["shop/holdout"] == ("built", "definition changed")
    assert _statuses(report)["shop/clf"] == "reused"
    assert _statuses(report)["shop/training"] == "reused"

    # Other rows: the model is retrained and compared with the champion on the rows of the new
    # evaluation set that neither trained on (the champion trained on four in five customers).
    write_pipeline(
        "shop",
        SHOP.replace("where customer_id % 5 = 0", "where customer_id % 4 = 0").replace(
            "where customer_id % 5 <> 0", "where customer_id % 4 <> 0"
        ),
    )
    report = run(defs_dir=defs_dir)
    assert _statuses(report)["shop/holdout"] == "built"
    clf = next(o for o in report.outcomes if o.key == "shop/clf")
    assert clf.status == "built"
    assert "shop/holdout has new data" in clf.reason
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    promotion = client.get_model_version("shop.clf", "2").tags["slipway.promotion"]
    # Customers 0, 20, 40, ...: in the new holdout, and in neither training set.
    assert promotion.endswith("on 30 rows of evaluation set holdout neither trained on"), promotion


def test_an_evaluation_set_that_shares_rows_with_training_fails_the_model(home, defs_dir, graph, write_pipeline):
    write_pipeline("shop", SHOP.replace("where customer_id % 5 = 0", "where customer_id % 4 = 0"))
    report = run(defs_dir=defs_dir)
    clf = next(o for o in report.outcomes if o.key == "shop/clf")
    assert (clf.status, clf.detail) == (
        "failed",
        "pipeline shop, model clf: 120 rows of the evaluation set holdout are also in the training dataset "
        "training (the same values in every column both have); an evaluation set must be held out",
    )


def test_an_observe_query_stands_for_the_data_of_a_database_source(home, defs_dir, graph, database, write_pipeline):
    observed = SHOP.replace(
        "connection: SHOP_DB_URL}",
        "connection: SHOP_DB_URL, observe: 'select count(*), max(customer_id) from accounts'}",
    )
    write_pipeline("shop", observed)
    run(defs_dir=defs_dir)
    # A change the observe query does not see is not seen (that is the contract of `observe`) ...
    database.execute("update accounts set plan = 'basic' where customer_id = 3")
    assert set(_statuses(run(defs_dir=defs_dir)).values()) == {"reused"}
    # ... one it sees rebuilds the source's dataset, which then reads the whole table.
    database.execute("insert into accounts values (600, 'premium')")
    report = run(defs_dir=defs_dir)
    assert _why(report)["shop/accounts"] == ("built", "shop/accounts/query_accounts has new data")
    accounts = current_table("shop/accounts")
    assert len(accounts) == 601 and accounts.loc[accounts["customer_id"] == 3, "plan"].item() == "basic"


def test_a_database_table_read_in_another_order_or_with_bytes_is_the_same_data(home, defs_dir, graph, database):
    from assets.data.sources import observe_database
    from assets.spec.schema import Source

    database.execute("alter table accounts add column photo bytea")
    database.execute("update accounts set photo = decode('cafe', 'hex') where customer_id < 5")
    source = Source(sql="select * from accounts", connection="SHOP_DB_URL")
    first = observe_database(source, "here")
    # An update that changes nothing moves the rows within the table: without ORDER BY, they come back in another order.
    database.execute("update accounts set plan = plan where customer_id < 300")
    assert observe_database(source, "here") == first
    database.execute("update accounts set plan = 'gold' where customer_id = 7")
    assert observe_database(source, "here")[0] != first[0]


def test_running_one_pipeline_sees_new_data_of_the_pipelines_it_reads(home, defs_dir, graph):
    run(defs_dir=defs_dir)
    assert set(_statuses(run(defs_dir=defs_dir, names=["shop"])).values()) == {"reused"}  # the no-op cache is set
    events_for(graph.head(100), 4).to_csv(defs_dir / "crm" / "data" / "events_001.csv", index=False)
    report = run(defs_dir=defs_dir, names=["shop"])
    statuses = _statuses(report)
    assert (
        statuses["crm/events"] == "built" and statuses["shop/features"] == "built" and statuses["shop/clf"] == "built"
    )
    assert statuses["crm/customers"] == "reused"


def test_an_empty_training_table_says_so(home, defs_dir, graph, write_pipeline):
    write_pipeline("shop", SHOP.replace("where customer_id % 5 <> 0", "where customer_id < 0"))
    report = run(defs_dir=defs_dir)
    clf = next(o for o in report.outcomes if o.key == "shop/clf")
    assert (clf.status, clf.detail) == ("failed", "pipeline shop, model clf: the dataset training has no rows")
