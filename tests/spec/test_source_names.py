"""A source node in the lineage is named by what it observes: its path or the table its query reads."""

from __future__ import annotations

import pytest

from assets.spec.paths import source_key_path
from assets.spec.schema import Source


@pytest.mark.parametrize(
    ("source", "name"),
    [
        (Source(path="data/orders.csv"), "data_orders_csv"),
        (Source(path="landing/batch_*.csv"), "landing_batch_csv"),
        (Source(path="${SLIPWAY_HOME}/landing/*.parquet"), "home_landing_parquet"),
        (Source(path="../shared/customers.csv"), "shared_customers_csv"),
        (Source(sql="select id, plan from crm.customers where active", connection="CRM_URL"), "query_crm_customers"),
        (Source(sql="SELECT 1 AS x", connection="CRM_URL"), "query"),
    ],
)
def test_a_source_is_named_by_its_path_or_the_table_its_query_reads(source: Source, name: str) -> None:
    assert source_key_path("shop", "orders", source) == ["shop", "orders", name]


def test_a_very_long_path_gives_a_bounded_name() -> None:
    key = source_key_path("shop", "orders", Source(path="/".join(["deep"] * 40) + "/x.csv"))
    assert len(key[-1]) <= 64 and key[-1].endswith("x_csv")
