"""What held an asset back is read from Dagster's evaluation of its rule (assets/automation/holds.py).

Each case evaluates the real rebuild rule with Dagster and reads the tree; none asks the record.
"""

from __future__ import annotations

import dagster as dg
import pytest

from assets.automation.holds import Held, Hold, held_back
from assets.automation.rebuild import rebuild_condition

RULE = rebuild_condition(None)


@dg.asset(automation_condition=RULE, code_version="1")
def orders() -> int:
    return 1


@dg.asset_check(asset=orders, blocking=True)
def orders_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False)


@dg.asset_check(asset=orders, blocking=True)
def orders_unique() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset(automation_condition=RULE, code_version="1")
def features(orders: int) -> int:
    return orders


@dg.asset(automation_condition=RULE, code_version="1")
def scores(features: int) -> int:
    return features


@dg.asset(automation_condition=dg.AutomationCondition.on_cron("0 9 * * *"))
def report() -> int:
    return 1


DEFS = dg.Definitions(assets=[orders, features, scores, report], asset_checks=[orders_positive, orders_unique])


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def _holds(instance: dg.DagsterInstance) -> dict[str, Held | None]:
    result = dg.evaluate_automation_conditions(defs=DEFS, instance=instance)
    return {k.to_user_string(): held_back(result, k) for k in (orders.key, features.key, scores.key, report.key)}


def test_a_first_evaluation_requests_the_root_and_holds_what_waits_for_its_checks(instance):
    holds = _holds(instance)
    assert holds["orders"] is None  # requested
    # Its blocking checks have not run: what reads it waits, and says for which checks.
    assert holds["features"] == Held(
        Hold.UPSTREAM_CHECK_FAILED, upstream="orders", detail="orders_positive, orders_unique"
    )
    assert holds["scores"] == Held(Hold.UPSTREAM_MISSING, upstream="features")
    assert holds["report"] == Held(Hold.OWN_CONDITION, detail=dg.AutomationCondition.on_cron("0 9 * * *").get_label())


def test_an_upstream_failing_a_blocking_check_is_named_with_the_check(instance):
    dg.materialize([orders, orders_positive, orders_unique], instance=instance, raise_on_error=False)
    holds = _holds(instance)
    assert holds["orders"] is None  # built, current
    assert holds["features"] == Held(Hold.UPSTREAM_CHECK_FAILED, upstream="orders", detail="orders_positive")
    assert holds["scores"] == Held(Hold.UPSTREAM_MISSING, upstream="features")


def test_an_asset_that_is_up_to_date_is_not_held(instance):
    dg.materialize([orders, features, scores], instance=instance)
    assert _holds(instance) == {
        "orders": None,
        "features": None,
        "scores": None,
        "report": Held(Hold.OWN_CONDITION, detail=dg.AutomationCondition.on_cron("0 9 * * *").get_label()),
    }


def test_the_rule_serializes_as_the_ui_loads_the_code_location():
    """The UI gets the code location as a serialized snapshot: a label that is not plain text fails to load."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    assert serialize_value(RepositorySnap.from_def(DEFS.get_repository_def()))
