"""Several partitions of a dataset in one run (``max_partitions_per_run``), each recorded as its own run would.

A run over a range of partitions runs the dataset's step once. Dagster would record one output
for the whole range, with one data version; instead each partition is built, checked, stored and
recorded alone: its own materialization (its data version, code version and what it read, the tags
Dagster writes for a partition's run) and its own check evaluations. A partition that fails does
not stop the others (a store's error does: the rest would fail alike); the step fails at the end
naming each, so Dagster marks those partitions failed and the ones built stay built. A run killed
part way leaves every partition finished before it recorded.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dagster as dg

from assets.spec.tags import CODE_VERSION_TAG, DATA_VERSION_TAG
from resources.errors import DataError, RefusedData, ResourceError, SlipwayError

#: Tags Dagster writes on a materialization (dagster._core.definitions.data_version).
USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
INPUT_VERSION_PREFIX = "dagster/input_data_version/"
INPUT_POINTER_PREFIX = "dagster/input_event_pointer/"
#: The data version Dagster gives an input never recorded, and the pointer to no event.
NO_VERSION, NO_EVENT = "INITIAL", "NULL"

#: One partition built: yields the partition's output, check results and other events.
Build = Callable[[str, dict[str, Any], dict[str, list[str]]], Iterator[Any]]


def partitions_version(versions: Mapping[str, str], read: list[str]) -> str:
    """The input data version Dagster records for partitions ``read`` of an input: a hash of their versions.

    Those recorded, in the order of their keys (Dagster's ``_get_partitions_data_version_from_keys``).
    """
    return hashlib.sha256("".join(versions[p] for p in sorted(read) if p in versions).encode()).hexdigest()


class Provenance:
    """What each partition of the range read, as the tags Dagster records on a partition's materialization.

    Read once per run: the latest event of each input, and the data versions of the partitions the
    range reads of each partitioned input (a query each).
    """

    def __init__(self, instance: dg.DagsterInstance, parents: Mapping[dg.AssetKey, list[str] | None]) -> None:
        """``parents``: each input, with every partition the range reads of it (None: not partitioned)."""
        self.latest: dict[dg.AssetKey, tuple[str, str]] = {}  # version, event pointer
        self.by_partition: dict[dg.AssetKey, dict[str, str]] = {}
        storage = instance.event_log_storage
        records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(list(parents))}
        for parent, partitions in parents.items():
            entry = records.get(parent)
            event = None
            if entry is not None:
                event = entry.last_materialization_record or entry.last_observation_record
            if event is None:
                event = next(iter(instance.fetch_observations(parent, limit=1).records), None)
            version = (event.event_log_entry.tags or {}).get(DATA_VERSION_TAG) if event is not None else None
            self.latest[parent] = (version or NO_VERSION, str(event.storage_id) if event is not None else NO_EVENT)
            if partitions is not None and event is not None:
                # Dagster hashes the versions of an input's partitions from their materializations only.
                tags = storage.get_latest_tags_by_partition(
                    parent, dg.DagsterEventType.ASSET_MATERIALIZATION, [DATA_VERSION_TAG], asset_partitions=partitions
                )
                self.by_partition[parent] = {p: t[DATA_VERSION_TAG] for p, t in tags.items() if DATA_VERSION_TAG in t}

    def tags(
        self, code_version: str, data_version: str, read: Mapping[dg.AssetKey, list[str] | None]
    ) -> dict[str, str]:
        """The tags of a partition's materialization that read ``read`` (each input's partitions, None: whole)."""
        tags = {CODE_VERSION_TAG: code_version}
        for parent, partitions in read.items():
            version, pointer = self.latest[parent]
            if partitions is not None and parent in self.by_partition:
                version = partitions_version(self.by_partition[parent], partitions)
            tags[INPUT_VERSION_PREFIX + parent.to_user_string()] = str(version)
            tags[INPUT_POINTER_PREFIX + parent.to_user_string()] = pointer
        tags[DATA_VERSION_TAG] = data_version
        tags[USER_PROVIDED_TAG] = "true"
        return tags


def build_partitions(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    build: Build,
    frames: dict[str, Any],
    reads: Callable[[str], dict[str, list[str]]],
    parents: dict[dg.AssetKey, str | None],
    on_refused: Callable[[str, RefusedData, int], None],
) -> Iterator[Any]:
    """Build each partition of the run's range with ``build``; record each alone (see the module).

    ``frames`` are the inputs (a partitioned one a :class:`resources.partitioned.PartitionTables`);
    ``reads(partition)`` the partitions of each partitioned input that ``partition`` reads (by input
    name); ``parents`` each input's key and its input name (None: a dependency read by key, its source,
    split as the dataset is). ``on_refused(partition, error, seen)`` records and alerts data a
    blocking expectation refused.
    """
    from resources.artifacts import STORED
    from resources.partitioned import PartitionTables, partition_path

    store = context.resources.io_manager
    instance, run_id = context.instance, context.run.run_id
    keys = list(context.partition_keys)
    code_version = context.assets_def.code_versions_by_key.get(key) or run_id
    seen = instance.event_log_storage.get_maximum_record_id() or 0
    split = {name for name, frame in frames.items() if isinstance(frame, PartitionTables)}
    every = {k: reads(k) for k in keys}

    def read_of(partition: str) -> dict[dg.AssetKey, list[str] | None]:
        return {
            parent: every[partition][name] if name in split else [partition] if name is None else None
            for parent, name in parents.items()
        }

    reading = [read_of(k) for k in keys]
    # Each input, with every partition the range reads of it (None: read whole).
    union = {
        p: None if reading and reading[0][p] is None else sorted({k for r in reading for k in r[p] or ()})
        for p in parents
    }
    provenance = Provenance(instance, union)
    failed: list[tuple[str, Exception]] = []
    stopped: str | None = None  # the partition a store's error stopped the run at

    def stored(partition: str, output: dg.Output) -> Iterator[Any]:
        """The partition's table stored and its materialization recorded, as its own run's output would be."""
        store.write(partition_path(key, partition), output.value, run_id)
        version = output.data_version.value if output.data_version is not None else ""
        yield dg.AssetMaterialization(
            asset_key=key,
            partition=partition,
            metadata={**output.metadata, STORED: True},
            tags=provenance.tags(code_version, version, read_of(partition)),
        )

    try:
        for partition in keys:
            try:
                given = {n: f.table(every[partition][n]) if n in split else f for n, f in frames.items()}
                steps = build(partition, given, every[partition])
                yield from _built(context, key, partition, steps, functools.partial(stored, partition))
            except ResourceError as exc:  # a store or service: the partitions after it would fail alike
                failed.append((partition, exc))
                stopped = partition
                break
            except Exception as exc:  # this partition's data, or code that fails on it: the others go on
                failed.append((partition, exc))
                if isinstance(exc, RefusedData):
                    on_refused(partition, exc, seen)
    except BaseException:  # interrupted (Ctrl-C): what failed before it is said in the run's log
        if failed:
            context.log.error(str(_failure(failed, keys, None)))
        raise
    if failed:
        raise _failure(failed, keys, stopped)
    # The step declares an output per check; each partition's evaluations were recorded above.
    for name in context.op_execution_context.selected_output_names:
        if name != "result":
            yield dg.Output(None, output_name=name)


def _built(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    partition: str,
    steps: Iterator[Any],
    stored: Callable[[dg.Output], Iterator[Any]],
) -> Iterator[Any]:
    """One partition's ``steps``, in the order its own run records them.

    The output is stored and recorded when it comes (a store's error ends the partition there, as
    it fails a run's step before its checks); the check results are recorded after it, or, when
    the data was refused, on the materialization it did not replace. Other events pass on.
    """
    checks: list[dg.AssetCheckResult] = []
    done = False
    try:
        for event in steps:
            if isinstance(event, dg.AssetCheckResult):
                checks.append(event)
            elif isinstance(event, dg.Output):
                yield from stored(event)
                done = True
            else:
                yield event
    except RefusedData:  # what refused it, judged on the data that was not stored
        yield from _checks_of(context, key, partition, checks)
        raise
    except Exception:
        if done:  # stored: its checks are about it
            yield from _checks_of(context, key, partition, checks)
        raise
    yield from _checks_of(context, key, partition, checks)


def _failure(failed: list[tuple[str, Exception]], keys: list[str], stopped: str | None) -> Exception:
    """The step's error: the first failure on its first line (for alerts), then a line per partition.

    ``partition k: why`` for each failed one, ``partition k: not tried …`` for those after a
    store's error (:func:`definitions.cli.partition_runs.split` gives each partition its line).
    Refused data first only when nothing else failed: an alert is about the rest.
    """
    ordered = sorted(failed, key=lambda f: isinstance(f[1], RefusedData))
    lines = [f"partition {p}: {_reason(e, p)}" for p, e in ordered]
    if stopped is not None:
        lines += [
            f"partition {p}: not tried: the run stopped at partition {stopped}" for p in keys[keys.index(stopped) + 1 :]
        ]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""  # what an alert's one line says
    head = f"{len(failed)} of {len(keys)} partitions failed: {lines[0]}{more}"
    kind: type[Exception] = DataError
    if all(isinstance(e, RefusedData) for _, e in failed):
        kind = RefusedData
    elif stopped is not None:
        # The store's own error first (it is what to fix, and how a store's failure is told apart).
        error = next(e for p, e in failed if p == stopped)
        untried = len(keys) - keys.index(stopped) - 1
        head = f"{_reason(error, stopped)} (partition {stopped}; {untried} after it not tried"
        head += f", {len(failed) - 1} failed before it)" if len(failed) > 1 else ")"
        kind = ResourceError
    return kind("\n".join([head, *lines]))


def _reason(error: Exception, partition: str) -> str:
    """A partition's error on its line: without where it happened (the line says), with its type if not Slipway's."""
    first = str(error).splitlines()[0] if str(error) else ""
    if not isinstance(error, SlipwayError):
        return f"{type(error).__name__}: {first}" if first else type(error).__name__
    return first.split(f", partition {partition}: ", 1)[-1]


def _checks_of(
    context: dg.AssetExecutionContext, key: dg.AssetKey, partition: str, checks: list[dg.AssetCheckResult]
) -> Iterator[Any]:
    """Each check's evaluation of ``partition``, yielded (recorded at once, before what comes after).

    Each names the partition's latest materialization (the one just recorded, else the one that
    refused data did not replace), as Dagster's own evaluation of a partition's run does.
    """
    from resources.dagster_private import check_evaluation

    if not checks:
        return
    wanted = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition])
    latest = next(iter(context.instance.fetch_materializations(wanted, limit=1).records), None)
    for result in checks:
        spec = context.assets_def.get_spec_for_check_key(dg.AssetCheckKey(key, str(result.check_name)))
        yield check_evaluation(key, result, partition, spec.blocking, latest)


def parents(inputs: Mapping[str, dg.AssetIn], source: dg.AssetKey | None) -> dict[dg.AssetKey, str | None]:
    """Each input's key and name, and the dataset's ``source`` if observed (no name: read by key, split alike)."""
    found: dict[dg.AssetKey, str | None] = {a.key: n for n, a in inputs.items() if a.key is not None}
    if source is not None:
        found[source] = None
    return found


def input_reads(
    partitions: dg.PartitionsDefinition, inputs: Mapping[str, dg.AssetIn], instance: dg.DagsterInstance
) -> Callable[[str], dict[str, list[str]]]:
    """For a partition, the partitions it reads of each input (by name): its own, or a rolling window's.

    Mapped by each input's partition mapping, as Dagster maps a run of that one partition, and
    listed in the definition's order (oldest first), as a run reads them.
    """
    every = partitions.get_partition_keys(dynamic_partitions_store=instance)

    def reads(partition: str) -> dict[str, list[str]]:
        found = {}
        for name, asset_in in inputs.items():
            mapping = asset_in.partition_mapping
            if mapping is None:  # the same partitioning: the same partition
                found[name] = [partition]
                continue
            mapped = mapping.get_upstream_mapped_partitions_result_for_partitions(
                partitions.subset_with_partition_keys([partition]),
                partitions,
                partitions,
                dynamic_partitions_store=instance,
            )
            wanted = set(mapped.partitions_subset.get_partition_keys())
            found[name] = [k for k in every if k in wanted]
        return found

    return reads


def refusal(
    context: dg.AssetExecutionContext, key: dg.AssetKey, alerter: Any
) -> Callable[[str, RefusedData, int], None]:
    """Record a partition's refused data (:func:`assets.data.failures.record_failure`) and alert it, as a run would."""
    from assets.data.failures import record_failure
    from resources.alerts import Alert

    def refused(partition: str, error: RefusedData, seen: int) -> None:
        try:
            record_failure(context, key, error, seen, partition=partition)
        except Exception as problem:  # the failure itself is what must reach the user
            context.log.warning(f"could not record the failure of {key.to_user_string()}[{partition}]: {problem}")
        shown = f"{key.to_user_string()}[{partition}]"
        alerter.send(
            Alert("check_failed", f"{shown}: data refused", str(error).splitlines()[0], key.to_user_string()),
            context.log,
        )

    return refused
