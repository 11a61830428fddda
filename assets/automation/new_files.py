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

import dagster as dg

from assets.automation.staleness import DATA_VERSION_TAG
from assets.data.dataset_asset import SOURCE_METADATA
from resources.errors import SlipwayError


def observe_new_files(context: dg.SensorEvaluationContext, roots: list[str]) -> dg.SkipReason:
    """One tick: observe each file source whose files changed since its last observation."""
    graph = context.repository_def.asset_graph  # type: ignore[union-attr]
    watched, changed = 0, []
    for key in sorted(graph.observable_asset_keys, key=lambda k: k.to_user_string()):
        observed = _observe(context, key, graph.get(key).metadata, roots)
        if observed is None:
            continue
        watched += 1
        version, metadata = observed
        if _last_version(context.instance, key) != version:
            context.instance.report_runless_asset_event(
                dg.AssetObservation(asset_key=key, tags={DATA_VERSION_TAG: version}, metadata=metadata)
            )
            changed.append(f"{key.to_user_string()} ({metadata['files']} files)")
    sources = f"{watched} file source{'' if watched == 1 else 's'}"
    if changed:
        message = f"{sources}: new or changed files in {', '.join(changed)}"
        context.log.info(message)
        return dg.SkipReason(message)
    return dg.SkipReason(f"{sources}: no new or changed files")


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


def _last_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    records = instance.fetch_observations(key, limit=1).records
    observation = records[0].event_log_entry.asset_observation if records else None
    return None if observation is None else (observation.tags or {}).get(DATA_VERSION_TAG)
