"""Partitioned tables in an artifact store: where a partition is kept, and reading several as one table.

A partition of ``<pipeline>/<asset>`` is stored under ``<pipeline>/<asset>/partition=<key>/``, as
any table is, by the run that built it; which run's copy is current is Dagster's record of that
partition (:meth:`resources.artifacts.ArtifactStore.recorded`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from resources.errors import DataError

#: On an asset input: read only the last N partitions of the (partitioned) asset (a model's ``window``).
WINDOW_METADATA = "slipway/window"
#: On a table read from partitions (``DataFrame.attrs``): each partition read, its stored run and data version.
PARTITIONS_READ = "slipway/partitions_read"


def partition_path(asset_key: dg.AssetKey, partition: str) -> tuple[str, ...]:
    """Where partition ``partition`` of ``asset_key`` is stored: ``<pipeline>/<asset>/partition=<key>/``."""
    return (*asset_key.path, f"partition={partition}")


def partition_keys(context: dg.InputContext) -> list[str]:
    """The partitions an input reads, in the definition's order (oldest window first); the last N for a window."""
    every = context.asset_partitions_def.get_partition_keys(dynamic_partitions_store=context.instance)
    wanted = set(context.asset_partition_keys)
    keys = [k for k in every if k in wanted]
    window = (context.definition_metadata or {}).get(WINDOW_METADATA)
    if window is not None:
        keys = keys[-int(getattr(window, "value", window) or 0) :]
    return keys


def load_partitions(store: Any, context: dg.InputContext) -> Any:
    """A partitioned input: its partitions as one table, or a :class:`PartitionTables` for a step building several.

    A step over a range of partitions (``max_partitions_per_run``) reads each partition's part alone.
    """
    keys = partition_keys(context)
    if _builds_several_partitions(context):
        return PartitionTables(store, context.instance, context.asset_key, keys)
    return read_partitions(store, context.instance, context.asset_key, keys)


def _builds_several_partitions(context: dg.InputContext) -> bool:
    """True when the step reading the input builds a range of partitions."""
    try:
        step = context.step_context
    except dg.DagsterInvariantViolationError:  # an input context built by hand, outside a run
        return False
    return step.has_partition_key_range and step.assets_def is not None and step.assets_def.partitions_def is not None


def read_partitions(
    store: Any,
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions: list[str],
    found: dict[str, tuple[str, str | None] | None] | None = None,
) -> Any:
    """Partitions ``partitions`` of ``asset_key`` from ``store`` as one table, in that order; a missing one is named.

    The table's ``attrs`` say which were read, by which run stored and at which data version
    (:data:`PARTITIONS_READ`: a list, in order, since JSON objects lose theirs in Dagster's record).
    ``found`` is :func:`recorded_partitions` of them (or more), when it was read already.
    """
    import pandas as pd

    found = recorded_partitions(instance, asset_key, partitions) if found is None else found
    found = {p: found.get(p) for p in partitions}
    missing = [p for p, stored in found.items() if stored is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        many = len(missing) > 1
        raise DataError(
            f"artifact store ({store.kind}): {asset_key.to_user_string()}: partition{'s' if many else ''} "
            f"{shown} of the {len(found)} read {'have' if many else 'has'} never been materialized; "
            f"backfill {'them' if many else 'it'} first (slipway backfill)"
        )
    if not found:
        raise DataError(f"artifact store ({store.kind}): {asset_key.to_user_string()}: no partition to read")
    stored = {p: s for p, s in found.items() if s is not None}
    frames = [store.read_version(partition_path(asset_key, p), s[0]) for p, s in stored.items()]
    table = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    table.attrs[PARTITIONS_READ] = [{"partition": p, "run": s[0], "data_version": s[1]} for p, s in stored.items()]
    return table


class PartitionTables:
    """An input of a run that builds several partitions: each partition's part, read when it is built.

    What the record holds of every partition the run reads is looked up once (two queries); a
    partition's tables are read from the store only when that partition is built, so a run of
    many partitions holds one partition's input at a time.
    """

    def __init__(self, store: Any, instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str]):
        """Look up which stored run holds each of ``partitions`` of ``asset_key``."""
        self.store, self.instance, self.asset_key = store, instance, asset_key
        self.found = recorded_partitions(instance, asset_key, partitions)

    def table(self, partitions: list[str]) -> Any:
        """Partitions ``partitions`` as one table (:func:`read_partitions`)."""
        return read_partitions(self.store, self.instance, self.asset_key, partitions, self.found)


def recorded_partitions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str]
) -> dict[str, tuple[str, str | None] | None]:
    """:meth:`ArtifactStore.recorded` of each of ``partitions``, read together: two queries, whatever their number.

    The latest materialization of each partition is nearly always the current one; a partition
    whose latest is not (a blocked or refused one marked not current) is looked up alone, deeper.
    """
    from resources.artifacts import ArtifactStore, is_current

    storage = instance.event_log_storage
    ids = storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions)
    )
    found: dict[str, tuple[str, str | None] | None] = {}
    if ids:
        wanted = dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(ids.values()))
        for record in instance.fetch_materializations(wanted, limit=len(ids)).records:
            current = is_current(record)
            if record.partition_key is not None and current is not None:
                found[record.partition_key] = current
    for partition in partitions:
        if partition not in found:
            found[partition] = ArtifactStore.recorded(instance, asset_key, partition) if partition in ids else None
    return {p: found[p] for p in partitions}
