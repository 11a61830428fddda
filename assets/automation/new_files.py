"""What the new-files sensor does: a batch dropped into a landing folder is seen at the next tick, with no run.

Each tick stats the files of every file source (:func:`assets.data.sources.observe_files`: names,
sizes and modification times, nothing read) and records a new observation, with the new data
version, for each source whose files changed since the last one. The automation sensor then
sees the dataset out of date by the same rule as everything else. A tick with nothing new
records nothing and launches nothing. Database sources are observed by their own schedule
(a query may cost the database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from assets.automation.staleness import DATA_VERSION_TAG
from assets.data.source_asset import SOURCE_METADATA
from assets.spec.tags import ALIAS_METADATA, SERVED_METADATA
from resources.errors import SlipwayError


def observe_new_files(
    context: dg.SensorEvaluationContext, roots: list[str], store: Any = None, registry: Any = None
) -> dg.SkipReason:
    """One tick: observe each source whose data changed since its last observation.

    File sources by a stat per file; with ``store``, served traffic (a listing of its batches);
    with ``registry``, the alias sources of predictions tables (one read of the aliases).
    """
    graph = context.repository_def.asset_graph  # type: ignore[union-attr]
    files, others, changed, data = 0, 0, [], False
    for key in sorted(graph.observable_asset_keys, key=lambda k: k.to_user_string()):
        metadata = graph.get(key).metadata
        partitions = graph.get(key).partitions_def
        if partitions is not None and SOURCE_METADATA in metadata:  # each partition's files
            files += 1
            recorded = _observe_partitions(context, key, metadata, partitions, roots)
            if recorded:
                span = recorded[0] if len(recorded) == 1 else f"{recorded[0]} … {recorded[-1]}"
                many = "partitions" if len(recorded) > 1 else "partition"
                changed.append(f"{key.to_user_string()} ({len(recorded)} {many}: {span})")
            continue
        observed = _observe(context, key, metadata, roots)
        if observed is not None:
            files += 1
        else:
            observed = _observe_stores(context, key, metadata, store, registry)
            if observed is None:
                continue
            others += 1
        version, shown = observed
        if _last_version(context.instance, key) != version:
            context.instance.report_runless_asset_event(
                dg.AssetObservation(asset_key=key, tags={DATA_VERSION_TAG: version}, metadata=shown)
            )
            if "files" in shown:
                what = f"{shown['files']} files"
            else:
                data = True
                what = f"{_value(shown['batches'])} batches" if "batches" in shown else f"v{version}"
            changed.append(f"{key.to_user_string()} ({what})")
    sources = f"{files} file source{'' if files == 1 else 's'}"
    sources += f", {others} served or alias source{'' if others == 1 else 's'}" if others else ""
    if changed:
        message = f"{sources}: new or changed {'data' if data else 'files'} in {', '.join(changed)}"
        context.log.info(message)
        return dg.SkipReason(message)
    return dg.SkipReason(f"{sources}: no new or changed {'data' if others else 'files'}")


def _observe_stores(
    context: dg.SensorEvaluationContext, key: dg.AssetKey, metadata: dict, store: Any, registry: Any
) -> tuple[str, dict] | None:
    """The data version of a served-traffic or alias source now (None for others, or when its store is down)."""
    from assets.serve.predictions import observe_alias, observe_served

    served, alias = metadata.get(SERVED_METADATA), metadata.get(ALIAS_METADATA)
    try:
        if served is not None and store is not None:
            return observe_served(store, str(_value(served)))
        if alias is not None and registry is not None:
            return observe_alias(registry, str(_value(alias)))
    except SlipwayError as exc:  # a store or registry that is down: said, observed at a later tick
        context.log.warning(f"{key.to_user_string()}: not observed now: {exc}")
    return None


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


def _observe(
    context: dg.SensorEvaluationContext, key: dg.AssetKey, metadata: dict, roots: list[str]
) -> tuple[str, dict] | None:
    """The data version of a file source now (None for other sources, or files that cannot be listed)."""
    from assets.data import sources
    from assets.spec.schema import Source

    raw, folder = metadata.get(SOURCE_METADATA), metadata.get("slipway/folder")
    if raw is None or folder is None:
        return None
    source = Source.model_validate_json(str(getattr(raw, "value", raw)))
    try:
        return sources.observe_files(source, Path(str(getattr(folder, "value", folder))), key.to_user_string(), roots)
    except SlipwayError as exc:  # no file yet, a path that leads outside: said, not recorded
        context.log.warning(str(exc))
        return None


def _observe_partitions(
    context: dg.SensorEvaluationContext,
    key: dg.AssetKey,
    metadata: dict,
    partitions: dg.PartitionsDefinition,
    roots: list[str],
) -> list[str]:
    """Record each partition of a partitioned file source whose files changed; the partitions recorded.

    A file that fits no partition key is named in a warning and skipped; a partition found in a
    new file (``discover: files``) is added to the instance's keys first.
    """
    from assets.data.partitioning import misfit, observe_source, record_observations
    from assets.spec.schema import Source

    raw, folder = metadata[SOURCE_METADATA], metadata.get("slipway/folder")
    source = Source.model_validate_json(str(_value(raw)))
    where = key.to_user_string()
    try:
        found = observe_source(source, partitions, Path(str(_value(folder))), where, roots, context.instance)
    except SlipwayError as exc:  # a path that leads outside: said, not recorded
        context.log.warning(str(exc))
        return []
    versions, keys, odd = found
    for path in odd:
        context.log.warning(misfit(where, path, source))
    return sorted(record_observations(context.instance, key, partitions, versions, keys))


def _last_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    records = instance.fetch_observations(key, limit=1).records
    observation = records[0].event_log_entry.asset_observation if records else None
    return None if observation is None else (observation.tags or {}).get(DATA_VERSION_TAG)
