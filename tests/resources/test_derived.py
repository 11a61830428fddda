"""DuckDB queries share one in-process database: nothing one query sees may reach the next."""

from __future__ import annotations

import pandas as pd
import pytest

from resources.errors import DataError, DefinitionError
from resources.query import DuckdbEngine

run_query = DuckdbEngine().run


def test_an_input_of_one_query_is_gone_for_the_next_and_statements_that_keep_state_are_refused():
    frame = pd.DataFrame({"x": [1, 2]})
    assert run_query("select sum(x) as s from a", {"a": frame}, "here")["s"].tolist() == [3]
    with pytest.raises(DataError, match="Table with name a does not exist"):
        run_query("select * from a", {}, "here")
    with pytest.raises(DefinitionError, match="must be one query; found 2 statements"):
        run_query("create table kept as select 1 as y; select * from kept", {"a": frame}, "here")
    with pytest.raises(DefinitionError, match="must be a SELECT query"):
        run_query("create table kept as select 1 as y", {"a": frame}, "here")
    with pytest.raises(DataError, match="Table with name kept does not exist"):
        run_query("select * from kept", {}, "here")


def test_an_input_that_is_not_a_table_says_which():
    with pytest.raises(DataError, match="here: input a is an object of type list, not a table"):
        run_query("select * from a", {"a": [1, 2]}, "here")
