"""Why an asset was not requested, read from Dagster's evaluation of the rule it carries.

The rebuild rule (:func:`assets.automation.rebuild.rebuild_condition`) is an AND:
:class:`~assets.automation.rebuild.OutOfDate`, then four guards (:class:`~assets.automation.rebuild.Guard`).
A model's rule adds :class:`~assets.automation.retrain.GitChange` (:data:`assets.automation.rules.MODEL_RULE`).
Whatever held an asset back is the first part of that tree that was false for it, with the
upstream or check the part's own entries name; nothing here asks the record again. `slipway run`
shows it in its summary ("blocked: shop/orders failed blocking check …"), and adds the models
the retrain policy alone held back (a person asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dagster as dg

from assets.automation.rebuild import REBUILD_RULE, Guard
from assets.automation.rules import MODEL_RULE
from resources.dagster_private import entity, evaluation_metadata, evaluation_of, held, label, parts


class Hold(StrEnum):
    """What held an asset back."""

    FAILED_BEFORE = "failed_before"  # its data was refused with the same definition and inputs
    RUNNING = "running"  # a run of it is in progress
    UPSTREAM_RUNNING = "upstream_running"
    UPSTREAM_MISSING = "upstream_missing"
    UPSTREAM_CHECK_FAILED = "upstream_check_failed"
    RETRAIN_POLICY = "retrain_policy"  # a model out of date by new data only, which its policy decides about
    OWN_CONDITION = "own_condition"  # a hand-written asset's own automation condition


@dataclass(frozen=True)
class Held:
    """What held an asset back (:attr:`hold`), the upstream it names, and the detail (failed checks, the failure)."""

    hold: Hold
    upstream: str = ""
    detail: str = ""


_GUARDS = {
    Guard.NOT_RUNNING: Hold.RUNNING,
    Guard.NO_UPSTREAM_RUNNING: Hold.UPSTREAM_RUNNING,
    Guard.NO_UPSTREAM_MISSING: Hold.UPSTREAM_MISSING,
    Guard.UPSTREAM_CHECKS_PASSED: Hold.UPSTREAM_CHECK_FAILED,
}


def held_back(result: Any, key: dg.AssetKey) -> Held | None:
    """What held ``key`` back in ``result`` (of ``dg.evaluate_automation_conditions``).

    None when it was requested, is up to date, or was not evaluated.
    """
    evaluation = evaluation_of(result, key)
    if evaluation is None or not held(evaluation):
        return None
    if label(evaluation) == MODEL_RULE:
        rule, git = parts(evaluation)
        if not held(rule):
            return Held(Hold.RETRAIN_POLICY) if held(git) else None
        evaluation = rule
    if label(evaluation) != REBUILD_RULE:
        return Held(Hold.OWN_CONDITION, detail=label(evaluation) or evaluation.condition.name)
    out_of_date, *guards = parts(evaluation)
    if held(out_of_date):
        failure = evaluation_metadata(out_of_date).get("held")
        return Held(Hold.FAILED_BEFORE, detail=str(getattr(failure, "value", failure))) if failure else None
    for guard in guards:
        if held(guard):
            return _guard_held(guard)
    return None


def _guard_held(guard: Any) -> Held:
    """The :class:`Held` of a guard that was false, naming the upstream (and checks) its entries show."""
    hold = _GUARDS[Guard(label(guard) or "")]
    if hold is Hold.RUNNING:
        return Held(hold)
    if hold is Hold.UPSTREAM_CHECK_FAILED:
        # all_deps_match: the upstream whose entry is false, and in it the checks that are false.
        for upstream in parts(guard):
            if held(upstream):
                checks = [entity(c) for c in _leaves(upstream) if entity(c) is not None and held(c)]
                names = sorted(c.name for c in checks if isinstance(c, dg.AssetCheckKey))
                return Held(hold, upstream=entity(upstream).to_user_string(), detail=", ".join(names))
        return Held(hold)
    # NOT(any_deps_match): the upstream whose entry is true.
    (match,) = parts(guard)
    upstream = next((entity(p) for p in parts(match) if not held(p)), None)
    return Held(hold, upstream=upstream.to_user_string() if upstream is not None else "")


def _leaves(evaluation: Any) -> list[Any]:
    """Every evaluation under ``evaluation`` (depth first)."""
    found = []
    for part in parts(evaluation):
        found.append(part)
        found.extend(_leaves(part))
    return found
