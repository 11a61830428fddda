"""The observable source asset of a dataset: its files (or database query), observed without loading the data."""

import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from assets.data import sources
from assets.data.partitioning import partition_versions
from assets.spec import paths
from assets.spec.schema import Dataset

OBSERVE_SCHEDULE = "*/5 * * * *"
# A file source asset's metadata: its source block, as JSON (what the new-files sensor observes).
SOURCE_METADATA = "slipway/source"


def source_key(pipeline: str, name: str, spec: Dataset | None = None) -> dg.AssetKey:
    """The key of the observable source asset of dataset ``name``'s files (or database query)."""
    return dg.AssetKey(paths.source_key_path(pipeline, name, spec.source if spec else None))


def build_source_asset(
    pipeline: str, name: str, spec: Dataset, folder: Path, partitions: dg.PartitionsDefinition | None = None
) -> dg.SourceAsset:
    """The files (or database query) of a dataset's source, observed without loading the data.

    A file source's data version is :func:`assets.data.sources.files_fingerprint`: names, sizes and
    modification times. A database source's is a hash of its ``observe`` query's result, else
    of its whole result (:func:`assets.data.sources.observe_database`). Observing it (``slipway
    run`` does before deciding; the UI's "Observe sources" too) marks the dataset unsynced
    when the data changed.
    """
    where = f"pipeline {pipeline}, dataset {name}"
    assert spec.source is not None  # only sourced datasets have a source asset

    def _observe(context: dg.AssetExecutionContext) -> Any:
        roots = context.resources.import_policy.data_roots
        if partitions is not None:
            keys = partitions.get_partition_keys(dynamic_partitions_store=context.instance)
            versions = partition_versions(spec.source, folder, where, roots, keys)  # type: ignore[arg-type]
            return dg.DataVersionsByPartition({k: dg.DataVersion(v) for k, v in versions.items()})
        version, metadata = sources.observe(spec.source, folder, where, roots)  # type: ignore[arg-type]
        return dg.ObserveResult(data_version=dg.DataVersion(version), metadata=metadata)

    condition: dg.AutomationCondition | None = None
    if spec.source.sql is not None:
        shown = f"the query on ${spec.source.connection}"
        metadata = {"slipway/connection": spec.source.connection, "slipway/query": spec.source.sql}
        # A query may cost the database: observed once at first, then every few minutes, by the
        # automation sensor (a run each time). `slipway run` observes it itself.
        condition = (
            dg.AutomationCondition.missing() | dg.AutomationCondition.cron_tick_passed(OBSERVE_SCHEDULE)
        ).with_label(f"observe: first, then on {OBSERVE_SCHEDULE}")
    else:
        # Files are observed by a stat each, at every tick of the new-files sensor, with no run
        # (assets.automation.new_files); `slipway run` observes them itself.
        shown = f"the files of dataset {name} ({spec.source.path})"
        metadata = {
            "slipway/files": spec.source.path,
            "slipway/folder": str(folder),
            SOURCE_METADATA: spec.source.model_dump_json(exclude_none=True),
        }

    # Observable source assets are marked beta; they are what makes new files visible
    # without loading them, so they are used on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.observable_source_asset(
            key=source_key(pipeline, name, spec),
            group_name=pipeline,
            automation_condition=condition,
            description=shown[0].upper() + shown[1:],
            metadata=metadata,
            required_resource_keys={"import_policy"},
            partitions_def=partitions,
        )(_observe)
