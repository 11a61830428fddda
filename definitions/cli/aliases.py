"""Alias pins in `slipway run`: reconciled around the launches, and shown in the summary (:mod:`assets.model.pins`)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

import dagster as dg

from assets.model import pins
from definitions.cli.dead_runs import OWNER_TAG, run_owner
from definitions.cli.execute import Engine
from definitions.cli.outcomes import AssetOutcome
from resources.errors import SlipwayError
from resources.registry import NO_ALIASES

# Why the registry of an engine could not be reached when asked here (its error).
_unreached: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def reconcile(engine: Engine, keys: Sequence[dg.AssetKey], pinned_only: bool = False) -> list[Any]:
    """Set the pinned aliases of the models among ``keys`` back to git's pins; report hand moves.

    ``pinned_only``: only models with pins (before training, so that a promotion compares
    with the pinned champion; a run of unpinned models asks the registry nothing first).
    Findings are recorded on each model asset as ``aliases_follow_git`` check evaluations
    (:func:`assets.model.pins.evaluations`) and returned for the summary. Nothing is asked when the
    registry's store could not be reached earlier in this run (it would wait for its retries
    again); the line then says which store and why.
    """
    if engine.read_only:  # the deployment's own runs apply its pins
        return []
    models = pins.models_of(engine.graph, [k for k in keys if k in engine.graph.materializable_asset_keys])
    if pinned_only:
        models = [m for m in models if m.promote.pin]
    if not models:
        return []
    down = unreachable(engine)
    if down is not None:
        return [pins.Finding("", "", "", f"alias pins not checked: {down}", "warning")]
    # After the trainings, also whether each served version can still be loaded.
    champions = not pinned_only
    try:
        findings = pins.reconcile(engine.stores.registry, models, champions=champions)
    except SlipwayError as exc:  # the registry is down: the datasets can still be built
        engine.registry_down = True
        _unreached[engine] = str(exc)  # the same line again after the launches: said once
        return [pins.Finding("", "", "", f"alias pins not checked: {exc}", "warning")]
    checks = [pins.ALIAS_CHECK, pins.CHAMPION_CHECK] if champions else [pins.ALIAS_CHECK]
    failed = {(f.asset, f.message): f for f in findings if f.check == pins.CHAMPION_CHECK and not f.passed}
    for event in pins.evaluations(engine.instance, findings, [m.asset for m in models], checks):
        engine.instance.report_runless_asset_event(event)
        lost = failed.get((event.asset_key.to_user_string(), event.description))
        if lost is not None:  # newly failing: alerted once, as the check is reported once
            engine.stores.resources["alerter"].send(pins.champion_alert(lost), logging.getLogger("slipway.alerts"))
    return [f for f in findings if f.level != "ok"]  # the summary lists what is not as it should be


def show(engine: Engine, outcomes: Sequence[AssetOutcome]) -> None:
    """Set each model row's aliases, and its champion, to what the registry holds now (a pin may have moved them)."""
    shown = [dg.AssetKey.from_user_string(o.key) for o in outcomes if o.kind == "model" and o.model_version]
    models = pins.models_of(engine.graph, shown)
    names = {m.asset: m.registered for m in models}
    served = {m.asset: m.promote.alias for m in models}
    if not names or unreachable(engine) is not None:  # asking again would wait as long again
        return
    try:
        states = engine.stores.registry.alias_states(sorted(set(names.values())))
    except SlipwayError:
        return  # the rows keep what the record says
    for o in outcomes:
        if o.key in names:
            aliases = states.get(names[o.key], NO_ALIASES).aliases
            o.alias = ", ".join(sorted(a for a, v in aliases.items() if v == o.model_version)) or None
            o.champion = aliases.get(served[o.key])


def unreachable(engine: Engine) -> str | None:
    """Why the registry could not be reached earlier in this run (which store, and its error), or None.

    A model's step that failed on the tracker or the registry marks the run (``registry_down``);
    only a failure to reach the registry's own store (the tracker's counts when they share it)
    makes asking again pointless. A store that answered with an error of its own (a row that
    already exists, a model skops will not save) says nothing about the registry.
    """
    if engine in _unreached:
        return _unreached[engine]
    if not engine.registry_down:
        return None
    failure = _store_failure(engine)
    if failure is None or f"({engine.stores.registry.location})" not in failure or not _not_reached(failure):
        return None
    return f"{failure} (earlier in this run)"


def _store_failure(engine: Engine) -> str | None:
    """The newest failure on the tracker or registry among the runs this `slipway run` launched.

    This home's `slipway run`s take turns (its run lock), so the runs launched by this one are the
    newest with this owner; the newest failure on a store among them is this run's.
    """
    tags = {OWNER_TAG: run_owner(), "slipway/command": "run"}
    for record in engine.instance.get_runs(filters=dg.RunsFilter(tags=tags), limit=20):
        if "dagster/parent_run_id" in record.tags:  # a re-execution from the UI
            continue
        for entry in engine.instance.all_logs(record.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            error = entry.dagster_event.step_failure_data.error
            while error is not None:
                own = (error.message.partition(": ")[2].strip().splitlines() or [""])[0]
                if error.cls_name == "ResourceError" and own.startswith(("model registry (", "experiment tracker (")):
                    return own
                error = error.cause
    return None


# How MLflow says that a store did not answer: the client could not be built, an HTTP request got
# no answer (or a gateway's), a database refused the connection or is unavailable.
_NOT_REACHED = (
    ": cannot connect: ",
    "API request to ",
    "TEMPORARILY_UNAVAILABLE",
    "OperationalError",
    "failed with error code 50",
)


def _not_reached(failure: str) -> bool:
    return any(sign in failure for sign in _NOT_REACHED)
