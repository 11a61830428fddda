"""Alias pins in `slipway run`: reconciled around the launches, and shown in the summary (:mod:`assets.pins`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from assets import pins
from definitions.execute import Engine
from definitions.outcomes import AssetOutcome
from resources.errors import SlipwayError


def reconcile(engine: Engine, keys: Sequence[dg.AssetKey], pinned_only: bool = False) -> list[Any]:
    """Set the pinned aliases of the models among ``keys`` back to git's pins; report hand moves.

    ``pinned_only``: only models with pins (before training, so that a promotion compares
    with the pinned champion; a run of unpinned models asks the registry nothing first).
    Findings are recorded on each model asset as ``aliases_follow_git`` check evaluations
    (:func:`assets.pins.evaluations`) and returned for the summary. Nothing is asked when a
    store already failed in this run: it would wait for its retries again.
    """
    models = pins.models_of(engine.graph, [k for k in keys if k in engine.graph.materializable_asset_keys])
    if pinned_only:
        models = [m for m in models if m.promote.pin]
    if not models:
        return []
    if engine.registry_down:
        reason = "a store could not be reached earlier in this run"
        return [pins.Finding("", "", "", f"alias pins not checked: {reason}", "warning")]
    try:
        findings = pins.reconcile(engine.stores.registry, models)
    except SlipwayError as exc:  # the registry is down: the datasets can still be built
        engine.registry_down = True
        return [pins.Finding("", "", "", f"alias pins not checked: {exc}", "warning")]
    for event in pins.evaluations(engine.instance, findings, [m.asset for m in models]):
        engine.instance.report_runless_asset_event(event)
    return findings


def show(engine: Engine, outcomes: Sequence[AssetOutcome]) -> None:
    """Set each model row's alias column to what the registry holds now (a pin may have moved it)."""
    shown = [dg.AssetKey.from_user_string(o.key) for o in outcomes if o.kind == "model" and o.model_version]
    names = {m.asset: m.registered for m in pins.models_of(engine.graph, shown)}
    if not names or engine.registry_down:  # asking again would wait as long again
        return
    try:
        states = engine.stores.registry.alias_states(sorted(set(names.values())))
    except SlipwayError:
        return  # the rows keep what the record says
    for o in outcomes:
        if o.key in names:
            aliases = states.get(names[o.key], ({}, {}))[0]
            o.alias = ", ".join(sorted(a for a, v in aliases.items() if v == o.model_version)) or None
