"""What `slipway validate` says of a dataset whose partitioning changed: what its record keeps, unread.

`slipway plan` says it of a change between two revisions; `validate` says it of the definitions
as they are against the stack's record when that is a local file (validate reads no server). That
record is the history a change of partitioning leaves behind: a table built whole when the dataset
is now partitioned, partitions that are not keys of the definition any more, partitions when it is
now built whole. Nothing is deleted: the record keeps them, and nothing reads them again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assets.spec.loader import LoadedPipeline
from stacks import LoadedStack


def history_notes(pipelines: list[LoadedPipeline], loaded: LoadedStack) -> list[str]:
    """A line for each dataset whose record holds what its partitioning no longer reads (none on a new record)."""
    from stacks.build import open_instance

    stack = loaded.stack
    if stack.instance.storage != "sqlite":
        return []  # validate is offline: a server's record is not read (`slipway plan` says what a change leaves)
    if not (Path(stack.instance.base_dir) / "storage" / "history" / "runs.db").exists():
        return []  # nothing has run here: no history
    roots = stack.data_roots
    try:
        instance = open_instance(stack, read_only=True)
        try:
            return [line for p in pipelines for n in p.spec.datasets if (line := _note(instance, p, n, roots))]
        finally:
            instance.dispose()
    except Exception as exc:  # a record that cannot be read (locked, another version's) is not validate's failure
        shown = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [f"stack {loaded.name}: what a change of partitioning leaves in the record is not said: {shown}"]


def _note(instance: Any, pipeline: LoadedPipeline, name: str, roots: Any) -> str | None:
    import dagster as dg

    from assets.data.partitioning import dataset_partitions

    key = dg.AssetKey([pipeline.spec.name, name])
    latest = instance.fetch_materializations(key, limit=1).records
    if not latest:
        return None
    built = set(
        instance.event_log_storage.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
    )
    partitions = dataset_partitions(pipeline.spec, name)
    spec = pipeline.spec.datasets[name]
    where = pipeline.where("datasets", name, "partitions" if spec.partitions is not None else "source")
    head = f"{where}: pipeline {pipeline.spec.name}: dataset {name}"
    if partitions is None:
        if built and latest[0].partition_key is not None:
            return (
                f"{head}: no longer partitioned: its {_count(len(built))} built stay in the record, unread; "
                "it builds whole at the next run"
            )
        return None
    keys = _keys(pipeline, name, partitions, instance, roots)
    if latest[0].partition_key is None and not built:
        return (
            f"{head}: now partitioned: the table built whole (run {latest[0].run_id[:8]}) stays in the record, "
            f"unread; {_count(len(keys))} build at the next run"
        )
    gone = sorted(built - set(keys))
    todo = [k for k in keys if k not in built]
    if not gone or not (todo or _changed(latest[0], spec)):
        return None  # nothing left behind, or the change was built already
    shown = gone[0] if len(gone) == 1 else f"{gone[0]} … {gone[-1]}"
    return (
        f"{head}: {_count(len(gone))} built before {'is' if len(gone) == 1 else 'are'} not one of its partitions "
        f"now ({shown}): {'it stays' if len(gone) == 1 else 'they stay'} in the record, unread; "
        f"{len(todo)} of {_count(len(keys))} build at the next run"
    )


def _keys(pipeline: LoadedPipeline, name: str, partitions: Any, instance: Any, roots: Any) -> list[str]:
    """The partitions of dataset ``name`` that can build now: those whose files are there (a day not landed waits)."""
    from assets.data.partitioning import observe_source
    from assets.spec.partitions import declaring

    owner = declaring(pipeline.spec.datasets)[name]
    source = pipeline.spec.datasets[owner].source
    assert source is not None
    where = pipeline.where("datasets", owner, "source")
    versions, keys, _ = observe_source(source, partitions, pipeline.folder, where, roots, instance)
    return [k for k in keys if k in versions]


def _changed(record: Any, spec: Any) -> bool:
    """True when the definition differs from the one its latest build ran (its code version)."""
    from assets.automation.staleness import Built
    from assets.spec.versions import code_version

    return Built.of(record).code_version != code_version("dataset", spec)


def _count(n: int) -> str:
    return f"{n} partition{'s' if n != 1 else ''}"
