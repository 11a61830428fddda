"""Data refused by a blocking expectation is remembered with what it was given.

A build that fails because its data was refused (:class:`resources.errors.RefusedData`) records
the definition, inputs and environment it was given, so the rebuild predicate
(:mod:`assets.automation.rebuild`) does not request the same data again until one of them
changes. Nothing else that fails is recorded: it may be fixed without touching either.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.spec.tags import DATA_VERSION_TAG
from resources.dagster_private import set_cursor_values
from resources.errors import RefusedData

FAILURE_PREFIX = "slipway/failed/"


def current_data_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The data version of ``key``'s latest materialization, else of its latest observation."""
    event = instance.get_latest_materialization_event(key)
    if event is not None and event.asset_materialization is not None:
        return (event.asset_materialization.tags or {}).get(DATA_VERSION_TAG)
    records = instance.fetch_observations(key, limit=1).records
    observation = records[0].event_log_entry.asset_observation if records else None
    return None if observation is None else (observation.tags or {}).get(DATA_VERSION_TAG)


def environment() -> str:
    """What, besides definitions and inputs, can change how data is judged: the lock file, Slipway."""
    from assets.spec.lineage import lock_hash, slipway_version

    return f"{lock_hash()}/{slipway_version()}"


def given_inputs(context: dg.AssetExecutionContext, key: dg.AssetKey) -> dict[str, str | None]:
    """The current data version of each input of ``key``, as :meth:`Record.inputs` reads them."""
    parents = sorted(context.assets_def.asset_deps.get(key, set()), key=lambda k: k.to_user_string())
    return {p.to_user_string(): current_data_version(context.instance, p) for p in parents}


def failure_name(key: dg.AssetKey, partition: str | None = None) -> str:
    """Where the refusal of ``key`` (of its ``partition``) is kept in the instance's key-value store."""
    return FAILURE_PREFIX + key.to_user_string() + (f"[{partition}]" if partition is not None else "")


def record_failure(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    error: BaseException,
    inputs: dict[str, str | None] | int,
    partition: str | None = None,
) -> None:
    """Remember that ``key``'s data was refused, with the definition and inputs it was given.

    The rule does not request it again until one of them changes (the same data fails the
    same checks); `--force` still does. A partition's inputs are its partitions of other assets
    and of its source: what it was given is the record as it stood (``inputs``: the event log's
    latest id when it started); an input partition recorded after that is a change. ``partition``:
    the one refused, in a run that builds several (else the run's own).
    """
    if partition is None and context.has_partition_key:
        partition = context.partition_key
    failure = {
        "run": context.run.run_id,
        "at": time.time(),
        "code_version": context.assets_def.code_versions_by_key.get(key),
        "inputs" if partition is None else "seen": inputs,
        "environment": environment(),
        "error": str(error).splitlines()[0][:300],
    }
    set_cursor_values(context.instance, {failure_name(key, partition): json.dumps(failure)})


def recording_failures(
    context: dg.AssetExecutionContext, key: dg.AssetKey, steps: Iterator[Any], can_refuse: bool = True
) -> Iterator[Any]:
    """Run an asset's steps; data refused by a blocking expectation is recorded (:func:`record_failure`).

    Nothing else is: an import or allow-list error, a file that cannot be read, a store that is
    down or a library error may be fixed without touching the definition or the data, so those
    are tried again. The inputs recorded are those the step started with, read only for an
    asset that ``can_refuse`` (one with a blocking expectation): reading them costs a query
    per input on every build.
    """
    if not can_refuse:
        yield from steps
        return
    inputs: dict[str, str | None] | int
    if context.has_partition_key:
        inputs = context.instance.event_log_storage.get_maximum_record_id() or 0
    else:
        inputs = given_inputs(context, key)
    try:
        yield from steps
    except RefusedData as exc:
        try:
            record_failure(context, key, exc, inputs)
        except Exception as problem:  # the failure itself is what must reach the user
            context.log.warning(f"could not record the failure of {key.to_user_string()}: {problem}")
        raise
