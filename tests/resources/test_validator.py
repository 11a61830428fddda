"""The Great Expectations validator: one context per process, and every table judged on its own rows."""

from __future__ import annotations

import threading

import pandas as pd

from resources.validator import GreatExpectationsValidator

NOT_NULL = [("column_values_to_not_be_null", {"column": "value"})]
BETWEEN = [("column_values_to_be_between", {"column": "value", "min_value": 0})]


def test_tables_validated_one_after_another_under_one_name_each_get_their_own_result():
    validator = GreatExpectationsValidator()
    tables = [
        pd.DataFrame({"value": [1.0, 2.0]}),
        pd.DataFrame({"value": [1.0, None, 3.0]}),  # a null: fails
        pd.DataFrame({"value": [4.0]}),
    ]
    results = [validator.run_expectations(t, NOT_NULL, "web_events")[0] for t in tables]
    assert [r.success for r in results] == [True, False, True]
    assert results[1].details["unexpected_count"] == 1
    # Another table name and other expectations in the same process are their own too.
    [other] = validator.run_expectations(pd.DataFrame({"value": [-1.0, 2.0]}), BETWEEN, "web_other")
    assert not other.success
    assert validator.run_expectations(pd.DataFrame({"value": [5.0]}), BETWEEN, "web_events")[0].success


def test_tables_validated_from_several_threads_at_once_each_get_their_own_result():
    validator = GreatExpectationsValidator()
    found: dict[int, bool] = {}
    start = threading.Barrier(4)

    def judge(index: int) -> None:
        start.wait()
        frame = pd.DataFrame({"value": [1.0, None] if index % 2 else [1.0, 2.0]})
        found[index] = validator.run_expectations(frame, NOT_NULL, "web_events")[0].success

    threads = [threading.Thread(target=judge, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == {0: True, 1: False, 2: True, 3: False}


def test_a_table_judged_is_not_kept_alive_by_the_validator():
    import gc
    import weakref

    validator = GreatExpectationsValidator()
    frame = pd.DataFrame({"value": [1.0] * 1000})
    alive = weakref.ref(frame)
    assert validator.run_expectations(frame, NOT_NULL, "web_kept")[0].success
    del frame
    gc.collect()
    assert alive() is None
