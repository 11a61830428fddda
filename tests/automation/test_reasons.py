"""Rebuild reasons are data: decided on by kind, rendered as words only where a person reads them."""

from __future__ import annotations

from assets.automation.retrain import only_new_data
from assets.automation.staleness import Built, Reason, Why, out_of_date, said

BUILT = Built("run1", 0.0, "code-1", "data-1", {"shop/orders": "v1", "shop/plans": "p1"}, {})


def test_the_predicate_returns_typed_reasons_with_what_they_are_about():
    assert out_of_date(None, "code-1", {}) == [Reason(Why.FIRST_BUILD)]
    assert out_of_date(BUILT, "code-1", {"shop/orders": "v1", "shop/plans": "p1"}) == []
    assert out_of_date(BUILT, "code-2", {"shop/orders": "v2", "shop/plans": "p1", "shop/extra": "e1"}) == [
        Reason(Why.DEFINITION_CHANGED),
        Reason(Why.NEW_INPUT, "shop/extra"),
        Reason(Why.NEW_DATA, "shop/orders"),
    ]
    # An input whose data version is unknown never makes it stale.
    assert out_of_date(BUILT, "code-1", {"shop/orders": None, "shop/plans": "p1"}) == []


def test_reasons_read_as_the_summary_plan_and_sensors_show_them():
    reasons = out_of_date(BUILT, "code-2", {"shop/orders": "v2", "shop/plans": "p1"})
    assert said(reasons) == "definition changed; shop/orders has new data"
    assert str(Reason(Why.FIRST_BUILD)) == "first build"
    assert (
        str(Reason(Why.OUTPUT_LOST, "its stored output (run run1) is gone")) == "its stored output (run run1) is gone"
    )


def test_the_retrain_policy_decides_on_the_kind_not_the_words():
    assert only_new_data([Reason(Why.NEW_DATA, "shop/orders"), Reason(Why.NEW_DATA, "shop/plans")])
    assert not only_new_data([Reason(Why.NEW_DATA, "shop/orders"), Reason(Why.DEFINITION_CHANGED)])
    assert not only_new_data([])
    # A lost output whose words happen to end like new data is still a lost output.
    assert not only_new_data([Reason(Why.OUTPUT_LOST, "the copy of shop/orders has new data")])
