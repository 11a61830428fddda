"""Settle what a training that died left half-done.

A training records, in this order: an MLflow run (RUNNING); the model version, registered with
its promotion decision in one call; the alias moved to it; Dagster's materialization; the
MLflow run closed (FINISHED). A process killed between two of these leaves the first ones
done. :func:`settle` finishes the story for the runs of a Dagster run that has ended:

- a version Dagster never recorded is tagged ``slipway.abandoned`` with the reason, and each
  alias on it goes back to the version it replaced (tag ``slipway.replaces.<alias>``, written
  at registration) or, when there was none, is removed;
- the MLflow run is closed: FINISHED when Dagster recorded its version, else FAILED.

Versions are abandoned before their run is closed, so a settling that is itself interrupted
is found again (the run is still RUNNING) and finished by the next one.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from resources.dagster_private import cursor_values, set_cursor_values
from resources.registry import ABANDONED_TAG, ModelRegistry
from resources.tracker import ExperimentTracker, TrackedRun

__all__ = ["ABANDONED_TAG", "abandon", "give_up", "recorded_versions", "replaces_tag", "settle", "unsettled"]

# Models whose settling could not happen (the stores were down), in the instance's key/value store.
UNSETTLED = "slipway/unsettled"


def unsettled(instance: Any) -> list[str]:
    """The models (asset keys, as strings) left to settle by an earlier run."""
    return list(json.loads(cursor_values(instance, {UNSETTLED}).get(UNSETTLED) or "[]"))


def keep_unsettled(instance: Any, names: list[str], forgotten: frozenset[str] | set[str] = frozenset()) -> None:
    """Record ``names`` as the models left to settle (replacing the list), and say so in the UI.

    The list only tells `slipway run` which models to settle; each change is also an observation
    of the model (its Events tab), so what is left half-done is seen where the model is.
    """
    before = set(unsettled(instance))
    if set(names) == before:
        return
    set_cursor_values(instance, {UNSETTLED: json.dumps(sorted(set(names)))})
    # ``forgotten``: models no longer in the code location, dropped from the list but not settled.
    settled = before - set(names) - set(forgotten)
    said = {name: LEFT for name in set(names) - before} | dict.fromkeys(settled, SETTLED)
    for name, description in sorted(said.items()):
        instance.report_runless_asset_event(
            dg.AssetObservation(asset_key=dg.AssetKey.from_user_string(name), description=description)
        )


LEFT = (
    "MLflow run or model version left unsettled (a store was down): the model's next training settles it,"
    " or the next `slipway run` on a stack it launches on"
)
SETTLED = "MLflow runs and model versions settled"


DAGSTER_RUN_TAG = "slipway.dagster_run_id"
ASSET_TAG = "slipway.asset_key"


def replaces_tag(alias: str) -> str:
    """The version tag naming the version that held ``alias`` before this one took it."""
    return f"slipway.replaces.{alias}"


def settle(
    instance: dg.DagsterInstance,
    tracker: ExperimentTracker,
    registry: ModelRegistry,
    key: dg.AssetKey,
    experiment: str,
    registered: str,
) -> list[str]:
    """Settle the unfinished MLflow runs of model ``key`` whose Dagster run has ended; say what was done.

    A run whose Dagster run is still going, or is not on this instance (another deployment
    sharing the tracking server), is left alone. The caller holds the model's promotion lock.
    """
    done = []
    for run, tags in tracker.unfinished_runs(experiment, {ASSET_TAG: key.to_user_string()}):
        run_id = tags.get(DAGSTER_RUN_TAG, "")
        record = instance.get_run_by_id(run_id) if run_id else None
        if record is None or not record.is_finished:
            continue
        recorded = recorded_versions(instance, run_id, key)
        versions = registry.versions_of_run(registered, run.run_id)
        for version in versions:
            if version not in recorded:
                reason = f"Dagster run {run_id[:8]} ended ({record.status.value}) before Dagster recorded it"
                done.append(abandon(registry, registered, version, reason))
        delivered = any(version in recorded for version in versions)
        tracker.end_run(run, ok=delivered)
        state = "FINISHED (Dagster recorded its model)" if delivered else "FAILED"
        done.append(f"{registered}: MLflow run {run.run_id[:8]} of Dagster run {run_id[:8]} closed as {state}")
    return done


def give_up(tracker: ExperimentTracker, registry: ModelRegistry, run: TrackedRun, registered: str, reason: str) -> None:
    """After a failed training: abandon every version its run registered, then fail the run.

    Raises what the stores raise; the caller logs it and leaves the rest to :func:`settle`.
    """
    for version in registry.versions_of_run(registered, run.run_id):
        abandon(registry, registered, version, reason)
    tracker.end_run(run, ok=False)


def abandon(registry: ModelRegistry, name: str, version: str, reason: str) -> str:
    """Tag ``version`` abandoned and give its aliases back; return what was done, in one line."""
    registry.tag_version(name, version, {ABANDONED_TAG: reason[:4000]})
    moved = []
    tags = registry.version_tags(name, version) or {}
    for alias, holder in registry.aliases(name).items():
        if holder != version:
            continue
        if replaces_tag(alias) not in tags:
            # Registered by a Slipway that did not record what it replaced: moving the alias
            # would be a guess, so it stays, and the line says so.
            moved.append(f"{alias} left on it: it recorded no predecessor")
            continue
        previous = _usable_predecessor(registry, name, tags[replaces_tag(alias)], alias, seen={version})
        if previous is None:
            registry.delete_alias(name, alias)
            moved.append(f"{alias} removed")
        else:
            registry.set_alias(name, alias, previous)
            moved.append(f"{alias} back to v{previous}")
    return f"{name} v{version} abandoned: {reason}" + (f" ({', '.join(moved)})" if moved else "")


def _usable_predecessor(registry: ModelRegistry, name: str, previous: str, alias: str, seen: set[str]) -> str | None:
    """The latest version from ``previous`` back to hold ``alias`` that is still registered and not abandoned.

    A version deleted from the registry ends the walk (its tags, which name the one before it,
    are gone with it): the alias is then removed rather than guessed.
    """
    while previous != "none" and previous not in seen:
        seen.add(previous)
        tags = registry.version_tags(name, previous)
        if tags is None:  # deleted
            return None
        if ABANDONED_TAG not in tags:
            return previous
        previous = tags.get(replaces_tag(alias), "none")
    return None


def recorded_versions(instance: Any, run_id: str, key: dg.AssetKey) -> set[str]:
    """The model versions Dagster recorded for ``key`` in run ``run_id`` (from ``name@version``)."""
    found = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is not None and materialization.asset_key == key:
            data_version = (materialization.tags or {}).get("dagster/data_version", "")
            found.add(data_version.rpartition("@")[2])
    return found
