"""Batch scoring: a ``predictions:`` table, scored by whatever holds a model's alias.

Two assets per declared table:

- the **alias source** ``<pipeline>/<alias>_of_<model>`` (observable): its data version is the
  registered version that holds the alias now. A promotion, a pin or a ``git revert`` of a pin
  moves it, so the predicate sees a new input version ("shop.clf@champion moved v1 → v2").
  `slipway run` observes it before deciding; deployed, the new-files sensor observes it at each
  tick (one registry call, no run);
- the **table** ``<pipeline>/<name>``: reads the dataset's recorded Parquet file in chunks of
  ``chunk_rows`` and writes the scored chunks to a file the artifact store keeps, so a table
  larger than memory streams. It depends on the model asset too (so a cold run trains first
  and the lineage graph shows what scores it), but only the alias's version makes it stale
  (:data:`PREDICTIONS_METADATA`): a training that promotes nothing rescores nothing.

The materialization records the model version, the alias, the ``models:/`` URI and the git
SHA; the model version gets a ``slipway.predictions.<table>`` tag naming the Dagster run.
"""

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from assets.data.outputs import versioned_output
from assets.data.progress import finished, started
from assets.model.model_asset import registered_name
from assets.serve.traffic import traffic_key, traffic_version
from assets.spec.graph import key_of
from assets.spec.lineage import git_state
from assets.spec.model_spec import Model
from assets.spec.scoring import Prediction, alias_of, alias_source_name
from assets.spec.tags import ALIAS_METADATA, DATA_VERSION_TAG, PREDICTIONS_METADATA, SERVED_METADATA
from assets.spec.versions import code_version, combine
from resources.artifacts import TableFile
from resources.errors import DataError

#: The data version of an alias source while no version holds the alias.
NO_HOLDER = "none"


def alias_source_key(pipeline: str, model: str, alias: str) -> dg.AssetKey:
    """The key of the source that observes which version of ``pipeline/model`` holds ``alias``."""
    return dg.AssetKey([pipeline, alias_source_name(model, alias)])


def build_alias_source(pipeline: str, model: str, alias: str) -> dg.SourceAsset:
    """The observable source whose data version is the registered version holding ``alias``."""
    registry_name = registered_name(pipeline, model)

    def _observe(context: dg.AssetExecutionContext) -> dg.ObserveResult:
        # Before the first training (the UI's "Observe sources", or a run of every asset that
        # observes it first) no version holds the alias: a state to record, not a failure.
        version = context.resources.model_registry.aliases(registry_name).get(alias)
        if version is None:
            return dg.ObserveResult(
                data_version=dg.DataVersion(NO_HOLDER), metadata={"version": f"none: no version holds @{alias} yet"}
            )
        return dg.ObserveResult(data_version=dg.DataVersion(str(version)), metadata={"version": str(version)})

    with warnings.catch_warnings():  # observable source assets are beta; used on purpose
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.observable_source_asset(
            key=alias_source_key(pipeline, model, alias),
            group_name=pipeline,
            description=f"The version of {registry_name} that holds @{alias} (what is served and scored)",
            metadata={ALIAS_METADATA: f"{registry_name}@{alias}"},
            required_resource_keys={"model_registry"},
        )(_observe)


def build_served_source(pipeline: str, model: str) -> dg.SourceAsset:
    """The observable source of ``pipeline/model``'s served traffic (:mod:`assets.serve.traffic`).

    Its data version names the batches the servers wrote; the new-files sensor observes it at
    each tick (a listing of the store, no run), as the UI's "Observe sources" does.
    """
    registry_name = registered_name(pipeline, model)

    def _observe(context: dg.AssetExecutionContext) -> dg.ObserveResult:
        version, metadata = observe_served(context.resources.io_manager, registry_name)
        return dg.ObserveResult(data_version=dg.DataVersion(version), metadata=metadata)

    with warnings.catch_warnings():  # observable source assets are beta; used on purpose
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.observable_source_asset(
            key=dg.AssetKey(list(traffic_key(registry_name))),
            group_name=pipeline,
            description=f"What `slipway serve {pipeline}/{model}` was asked and answered, in batches",
            metadata={SERVED_METADATA: registry_name},
            required_resource_keys={"io_manager"},
        )(_observe)


def observe_served(store: Any, registry_name: str) -> tuple[str, dict[str, Any]]:
    """The data version of ``registry_name``'s served traffic, and what to show with it."""
    names = store.batches(traffic_key(registry_name))
    return traffic_version(names), {"batches": dg.MetadataValue.int(len(names))}


def observe_alias(registry: Any, alias_metadata: str) -> tuple[str, dict[str, Any]] | None:
    """The data version of an alias source (``registered@alias``): the version holding it; None when none does."""
    name, _, alias = alias_metadata.rpartition("@")
    version = registry.aliases(name).get(alias)
    return None if version is None else (str(version), {"version": str(version)})


def holder(registry: Any, registry_name: str, alias: str) -> str:
    """The version of ``registry_name`` that holds ``alias``; a :class:`DataError` naming the aliases that exist."""
    aliases = registry.aliases(registry_name)
    if alias not in aliases:
        held = ", ".join(f"@{a} (v{v})" for a, v in sorted(aliases.items())) or "none"
        raise DataError(f"{registry_name} has no alias @{alias} (its aliases: {held})")
    return str(aliases[alias])


def build_predictions_asset(
    pipeline: str, name: str, spec: Prediction, model: Model, folder: Path
) -> dg.AssetsDefinition:
    """The table ``pipeline/name``: ``spec.dataset`` scored by the version holding the alias."""
    alias = alias_of(spec, model.promote.alias)
    registry_name = registered_name(pipeline, spec.model)
    dataset_key = dg.AssetKey(key_of(pipeline, spec.dataset).split("/"))
    source_key = alias_source_key(pipeline, spec.model, alias)
    key = dg.AssetKey([pipeline, name])
    version_hash = code_version("predictions", spec)

    @dg.asset(
        key=key,
        group_name=pipeline,
        code_version=version_hash,
        deps=[dataset_key, source_key, dg.AssetKey([pipeline, spec.model])],
        description=spec.description or f"{spec.dataset} scored by {registry_name}@{alias}",
        kinds={"mlflow", "parquet"},
        metadata={"slipway/pipeline": pipeline, PREDICTIONS_METADATA: f"{registry_name}@{alias}"},
        required_resource_keys={"io_manager", "model_registry"},
    )
    def _predictions(context: dg.AssetExecutionContext) -> dg.Output:
        registry = context.resources.model_registry
        label = key.to_user_string()
        started(label, "scoring")
        version = holder(registry, registry_name, alias)
        # Observed here too, so that the UI's view of the alias is current; which version scored
        # is the materialization's `model_version`, which the predicate reads (Record.reasons).
        context.instance.report_runless_asset_event(
            dg.AssetObservation(asset_key=source_key, tags={DATA_VERSION_TAG: version}, metadata={"version": version})
        )
        estimator = registry.load(registry_name, version)
        store = context.resources.io_manager
        # The table and its data version from the same record: a dataset run that lands while
        # this scores is not claimed by it.
        recorded = store.recorded(context.instance, dataset_key)
        with store.recorded_file(context.instance, dataset_key, recorded[0] if recorded else None) as table:
            scored, rows = score_file(table, estimator, spec.column, spec.chunk_rows)
        try:
            registry.tag_version(registry_name, version, {f"slipway.predictions.{label}": context.run.run_id})
            sha, dirty = git_state(folder)
        except BaseException:
            shutil.rmtree(scored.parent, ignore_errors=True)
            raise
        finished(label, f"{rows} rows scored by v{version} @{alias}")
        return versioned_output(
            TableFile(scored),
            combine(version_hash, version, (recorded[1] if recorded else None) or ""),
            {
                "model_version": dg.MetadataValue.int(int(version)),
                "alias": alias,
                "registered_model": registry_name,
                "model_uri": f"models:/{registry_name}@{alias}",
                "rows": dg.MetadataValue.int(rows),
                "git_sha": sha,
                "git_dirty": dirty,
            },
        )

    return _predictions


def score_file(table: Path, estimator: Any, column: str, chunk_rows: int) -> tuple[Path, int]:
    """Score the Parquet file ``table`` chunk by chunk into a new Parquet file; its path and row count.

    Columns the model was fitted on (``feature_names_in_``) are checked before the first chunk:
    a missing one is named. Every input column is kept beside the prediction.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(table)
    features = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
    missing = [c for c in features if c not in source.schema_arrow.names]
    if missing:
        raise DataError(f"columns the model needs are missing from the table: {', '.join(missing)}")
    if column in source.schema_arrow.names:
        raise DataError(f"the table already has a column {column!r}; name another with `column:`")
    out = Path(tempfile.mkdtemp(prefix="slipway-scored-")) / "scored.parquet"
    writer = None
    rows = 0
    try:
        for batch in source.iter_batches(batch_size=chunk_rows):
            # Only the features go through pandas; the other columns stay Arrow, written as read.
            predicted = estimator.predict((batch.select(features) if features else batch).to_pandas())
            chunk = batch.append_column(column, pa.array(predicted))
            if writer is None:
                writer = pq.ParquetWriter(out, chunk.schema)
            writer.write_batch(chunk)
            rows += batch.num_rows
        if writer is None:  # no rows: an empty table with the prediction column
            schema = source.schema_arrow.append(pa.field(column, pa.float64()))
            pq.write_table(schema.empty_table(), out)
    finally:
        if writer is not None:
            writer.close()
    return out, rows
