"""A ``partitions`` block as Dagster's partitions definition, and which datasets of a pipeline it splits.

A sourced dataset declares its partitions; a dataset derived from partitioned inputs of its
pipeline takes theirs (they must agree), so a ``sql:`` or transform runs per partition. The
definitions are Dagster's own (time windows, static keys, dynamic keys added as files land), so
the UI shows the partition bar, per-partition status and data versions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg

from assets.data.sources import files_fingerprint
from assets.spec.partitions import Partitions, declaring, fill, key_of_file
from assets.spec.schema import Dataset, PipelineSpec, Source
from resources.errors import DataError


def dynamic_name(pipeline: str, dataset: str) -> str:
    """The name of the dynamic partitions of a ``discover: files`` dataset (its keys live in the instance)."""
    return f"{pipeline}__{dataset}"


def partitions_def(pipeline: str, dataset: str, block: Partitions) -> dg.PartitionsDefinition:
    """Dagster's partitions definition for ``block``, declared on ``pipeline``'s ``dataset``."""
    if block.static is not None:
        return dg.StaticPartitionsDefinition(list(block.static))
    if block.discover is not None:
        return dg.DynamicPartitionsDefinition(name=dynamic_name(pipeline, dataset))
    windows = block.time
    assert windows is not None  # exactly one kind (schema)

    def when(value: dt.date | dt.datetime | None) -> dt.datetime | None:
        if value is None or isinstance(value, dt.datetime):
            return value
        return dt.datetime(value.year, value.month, value.day)

    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=windows.cron,
        start=when(windows.start),  # type: ignore[arg-type]
        end=when(windows.end),
        timezone=windows.timezone,
        fmt=windows.key_format,
    )


def dataset_partitions(spec: PipelineSpec, name: str) -> dg.PartitionsDefinition | None:
    """The partitions definition of dataset ``name`` of ``spec`` (None: not partitioned)."""
    owner = declaring(spec.datasets).get(name)
    if owner is None:
        return None
    block = spec.datasets[owner].partitions
    assert block is not None
    return partitions_def(spec.name, owner, block)


def partitions_per_run(spec: PipelineSpec, name: str) -> int:
    """How many partitions of dataset ``name`` one run builds: its ``max_partitions_per_run``.

    A derived dataset takes its partitioned inputs' (the smallest, when they differ).
    """
    dataset = spec.datasets[name]
    if dataset.partitions is not None:
        return dataset.partitions.max_partitions_per_run
    owners = declaring(spec.datasets)
    found = [partitions_per_run(spec, i) for i in dataset.inputs or [] if i in owners]
    return min(found, default=1)


def window_counts(spec: PipelineSpec, name: str) -> dict[str, int]:
    """How many partitions each rolling window of dataset ``name`` reads (a window in time counted)."""
    from assets.spec.partitions import window_partitions

    owners = declaring(spec.datasets)
    found = {}
    for ref, window in spec.datasets[name].windows.items():
        block = spec.datasets[owners[ref]].partitions
        assert block is not None and block.time is not None  # checked by the schema (partition_problems)
        found[ref] = window_partitions(window, block.time)
    return found


def partition_source(dataset: Dataset, key: str) -> Any:
    """The dataset's source with its path's placeholder replaced by partition ``key``."""
    assert dataset.source is not None
    return source_of_partition(dataset.source, key)


def source_of_partition(source: Source, key: str) -> Source:
    """``source`` with its path's placeholder replaced by partition ``key``."""
    assert source.path is not None
    return source.model_copy(update={"path": fill(source.path, key)})


def discovered_keys(source: Source, folder: Path) -> tuple[list[str], list[str]]:
    """The partition keys the files of a ``discover: files`` source give, and the files that fit none.

    Every file beside those the path matches is looked at; one whose name does not fit the
    template is returned to be named in a warning, never taken.
    """
    import glob
    import os

    from assets.spec.paths import _expand

    assert source.path is not None
    pattern = _expand(fill(source.path, "*"), folder)
    keys: set[str] = set()
    odd: list[str] = []
    template = str(_expand(source.path, folder))
    for found in sorted(glob.glob(str(pattern.parent / "*"))):
        if not Path(found).is_file():
            continue
        key = key_of_file(template, found)
        if key is None:
            odd.append(os.path.relpath(found, folder))
        else:
            keys.add(key)
    return sorted(keys), odd


def partition_versions(source: Source, folder: Path, where: str, roots: Any, keys: Any) -> dict[str, str]:
    """The fingerprint of each partition of ``keys`` whose files exist (:data:`SOURCE_VERSION`); a stat per file."""
    from assets.spec.paths import source_files

    found = {}
    for key in keys:
        try:
            files = source_files(source_of_partition(source, key), folder, where, roots)
        except DataError:  # no file yet for this partition: nothing observed
            continue
        found[key] = files_fingerprint(files, folder)
    return found


def observe_source(
    source: Source, partitions: dg.PartitionsDefinition, folder: Path, where: str, roots: Any, instance: Any = None
) -> tuple[dict[str, str], list[str], list[str]]:
    """Each partition's files fingerprinted: the versions, every key, and the files that fit no key.

    The keys are the definition's (time, static; dynamic ones as ``instance`` holds them) or, for
    ``discover: files``, the files'. A stat per file; nothing is read.
    """
    odd: list[str] = []
    if isinstance(partitions, dg.DynamicPartitionsDefinition):
        keys, odd = discovered_keys(source, folder)
    else:
        keys = list(partitions.get_partition_keys(dynamic_partitions_store=instance))
    return partition_versions(source, folder, where, roots, keys), keys, odd


def observe_partitions(
    pipeline: str, name: str, dataset: Dataset, folder: Path, where: str, roots: Any
) -> tuple[str, dict[str, Any]]:
    """A partitioned file source observed: one version for all (what `slipway run` caches on) and each partition's.

    A file that fits no key (``discover: files``) is named in a warning and skipped.
    """
    import logging

    from assets.spec.versions import combine

    assert dataset.partitions is not None and dataset.source is not None
    partitions = partitions_def(pipeline, name, dataset.partitions)
    versions, keys, odd = observe_source(dataset.source, partitions, folder, where, roots)
    for path in odd:
        logging.getLogger("slipway.progress").warning(misfit(where, path, dataset.source))
    # Which partitions exist too: a new time window without a file yet changes what a run says
    # (it waits, and a model reading every partition is held), so `slipway run`'s cache of
    # "nothing to do" must not replay across it.
    version = combine(*(f"{k}\0{v}" for k, v in sorted(versions.items())), *(f"key\0{k}" for k in keys))
    return version, {PARTITION_VERSIONS: versions, PARTITION_KEYS: keys}


def misfit(where: str, path: str, source: Source) -> str:
    """The warning for a file that fits no partition key of ``source``'s path."""
    return f"{where}: {path} does not fit the source path {source.path!r}; skipped"


def record_observations(
    instance: Any, key: dg.AssetKey, partitions: dg.PartitionsDefinition, versions: dict[str, str], keys: list[str]
) -> list[str]:
    """Record each partition of source ``key`` whose files changed; the ones recorded.

    Dynamic keys (``discover: files``) follow the folder first: new files add theirs, a key whose
    files are gone is removed (what it built stays in the record).
    """
    from assets.spec.tags import DATA_VERSION_TAG

    if isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name is not None:
        # The folder is the list: a file that landed is a partition, one whose file is gone is none.
        known = set(instance.get_dynamic_partitions(partitions.name))
        new = [k for k in keys if k not in known]
        if new:
            instance.add_dynamic_partitions(partitions.name, new)
        for gone in sorted(known - set(keys)):
            instance.delete_dynamic_partition(partitions.name, gone)
    storage = instance.event_log_storage
    seen = storage.get_latest_tags_by_partition(key, dg.DagsterEventType.ASSET_OBSERVATION, [DATA_VERSION_TAG])
    # A partition whose files are gone (a refused day deleted, to be delivered again) is observed
    # as having none: it waits for them, and what was refused is given something new.
    now = {**{p: NO_FILES for p in keys if p in seen and p not in versions}, **versions}
    changed = [p for p, v in now.items() if seen.get(p, {}).get(DATA_VERSION_TAG) != v]
    for partition in changed:
        instance.report_runless_asset_event(
            dg.AssetObservation(asset_key=key, partition=partition, tags={DATA_VERSION_TAG: now[partition]})
        )
    return changed


#: The data version a source partition is observed at when its files are gone: not seen (it waits).
NO_FILES = "no-files"
#: In an observation's metadata (:func:`observe_partitions`): each partition's version, and every key.
PARTITION_VERSIONS = "slipway/partition_versions"
PARTITION_KEYS = "slipway/partition_keys"
