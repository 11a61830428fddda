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
from assets.spec.schema import Dataset, PipelineSpec
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


def partition_source(dataset: Dataset, key: str) -> Any:
    """The dataset's source with its path's placeholder replaced by partition ``key``."""
    assert dataset.source is not None and dataset.source.path is not None
    return dataset.source.model_copy(update={"path": fill(dataset.source.path, key)})


def discovered_keys(dataset: Dataset, folder: Path, where: str) -> tuple[list[str], list[str]]:
    """The partition keys the files of a ``discover: files`` source give, and the files that fit none.

    Every file under the path's fixed part is looked at; one whose name does not fit the template
    is returned to be named in a warning, never taken.
    """
    import glob
    import os

    from assets.spec.paths import _expand

    assert dataset.source is not None and dataset.source.path is not None
    template = dataset.source.path
    pattern = _expand(fill(template, "*"), folder)
    keys: set[str] = set()
    odd: list[str] = []
    relative_template = str(_expand(template, folder))
    for found in sorted(glob.glob(str(pattern.parent / "*"))):
        if not Path(found).is_file():
            continue
        key = key_of_file(relative_template, found)
        if key is None:
            odd.append(os.path.relpath(found, folder))
        else:
            keys.add(key)
    return sorted(keys), odd


def partition_versions(spec: Dataset, folder: Path, where: str, roots: Any, keys: Any) -> dict[str, str]:
    """The fingerprint of each partition of ``keys`` whose files exist (:data:`SOURCE_VERSION`); a stat per file."""
    from assets.spec.paths import source_files

    found = {}
    for key in keys:
        try:
            files = source_files(partition_source(spec, key), folder, where, roots)
        except DataError:  # no file yet for this partition: nothing observed
            continue
        found[key] = files_fingerprint(files, folder)
    return found


def observe_partitions(
    pipeline: str, name: str, dataset: Dataset, folder: Path, where: str, roots: Any
) -> tuple[str, dict[str, Any]]:
    """A partitioned file source observed: one version for all (what `slipway run` caches on) and each partition's.

    The keys are the definition's (time, static) or the files' (``discover: files``, whose files
    that fit no key are named in a warning and skipped). A stat per file; nothing is read.
    """
    import logging

    from assets.spec.versions import combine

    assert dataset.partitions is not None
    if dataset.partitions.discover is not None:
        keys, odd = discovered_keys(dataset, folder, where)
        for path in odd:
            logging.getLogger("slipway.progress").warning(
                f"{where}: {path} does not fit the source path {dataset.source.path!r}; skipped"  # type: ignore[union-attr]
            )
    else:
        keys = list(partitions_def(pipeline, name, dataset.partitions).get_partition_keys())
    versions = partition_versions(dataset, folder, where, roots, keys)
    version = combine(*(f"{k}\0{v}" for k, v in sorted(versions.items())))
    return version, {PARTITION_VERSIONS: versions, PARTITION_KEYS: keys}


#: In an observation's metadata (:func:`observe_partitions`): each partition's version, and every key.
PARTITION_VERSIONS = "slipway/partition_versions"
PARTITION_KEYS = "slipway/partition_keys"
