"""The rebuild predicate, written once: `slipway run` and the automation sensor both use it.

An asset is rebuilt when it was never built, when its code version differs from the one its
last materialization recorded, when an upstream's current data version differs from the one
that materialization recorded as its input, or when what it built is gone from the stores
(its artifact, its registered model version). It is never requested while it or an upstream is
in progress, while an upstream is missing and not requested with it, or while an upstream's
blocking check is failing.

Everything is read from the Dagster instance (the latest materialization of each asset, the
latest observation of each observable source), never from a file of Slipway's own; the
stores are asked only about what the instance says was built. The comparison is with the
last build, not with the previous evaluation, so the answer needs no cursor and is the same
from `slipway run`, the UI's automation sensor and ``dg.evaluate_automation_conditions``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Any, Protocol

import dagster as dg

from assets.automation.partition_record import PartitionRecord
from assets.automation.staleness import DATA_VERSION_TAG, Built, Reason, Why, out_of_date, said
from assets.data.failures import FAILURE_PREFIX, current_data_version, environment
from assets.spec.tags import ALIAS_METADATA, PREDICTIONS_METADATA
from resources.dagster_private import asset_graph_view, cursor_values, failed_checks

__all__ = [
    "DATA_VERSION_TAG",
    "REBUILD_RULE",
    "Built",
    "Guard",
    "OutOfDate",
    "Record",
    "rebuild_condition",
    "requested",
]

#: From this many partitions on, Dagster records an unpartitioned reader's input version as the latest
#: materialization's rather than a hash of every partition's (its SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD).
PARTITIONS_HASHED = 100

UNFINISHED = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)


class StoredOutputs(Protocol):
    """Asks the stores whether what an asset built is still there."""

    def missing(self, key: dg.AssetKey, built: Built) -> str | None:
        """Why the output recorded in ``built`` cannot be reused, or None when it is there."""


class Record:
    """The instance's record of a set of assets, read once per evaluation."""

    def __init__(self, instance: dg.DagsterInstance, graph: Any) -> None:
        """Read the latest materialization of every materializable asset and observation of every source."""
        self.graph = graph
        self.instance = instance
        self._other: dict[dg.AssetKey, str | None] = {}
        self._built: dict[dg.AssetKey, Built] = {}
        self._observed: dict[dg.AssetKey, str] = {}
        keys = list(graph.materializable_asset_keys)
        for asset_record in instance.get_asset_records(keys) if keys else []:
            entry = asset_record.asset_entry
            if entry.last_materialization_record is not None:
                self._built[entry.asset_key] = Built.of(entry.last_materialization_record)
        for key in graph.observable_asset_keys:
            records = instance.fetch_observations(key, limit=1).records
            observation = records[0].event_log_entry.asset_observation if records else None
            if observation is not None:
                tags = observation.tags or {}
                if DATA_VERSION_TAG in tags:
                    self._observed[key] = tags[DATA_VERSION_TAG]
        self._missing_outputs: dict[dg.AssetKey, str | None] = {}
        self._partitions: dict[dg.AssetKey, PartitionRecord] = {}
        self._combined: dict[dg.AssetKey, str | None] = {}
        names = {FAILURE_PREFIX + key.to_user_string() for key in keys}
        stored = cursor_values(instance, names)
        self._failures: dict[dg.AssetKey, dict[str, Any]] = {}
        for name, value in stored.items():
            try:
                self._failures[dg.AssetKey.from_user_string(name.removeprefix(FAILURE_PREFIX))] = json.loads(value)
            except ValueError:
                continue  # not one this version wrote: it holds nothing

    def inputs(self, key: dg.AssetKey) -> dict[str, str | None]:
        """The current data version of each input of ``key`` that can make it stale.

        A predictions table reads its model through the alias (its alias source), so the model
        asset's latest training is not one of them.
        """
        node = self.graph.get(key)
        parents = node.parent_keys
        if PREDICTIONS_METADATA in (node.metadata or {}):
            parents = {p for p in parents if "slipway/registered_model" not in (self.graph.get(p).metadata or {})}
        return {p.to_user_string(): self.data_version(p) for p in parents}

    def held(self, key: dg.AssetKey) -> str | None:
        """Why ``key`` is not tried again: it failed on bad data or a bad definition, and neither changed.

        Only data refused by a blocking expectation holds it (:func:`recording_failures`):
        the same data fails the same checks. Any other failure (a store, an import, a killed
        run, a library error) is tried again.
        """
        failure = self._failures.get(key)
        built = self._built.get(key)
        if not isinstance(failure, dict) or not {"at", "run", "code_version", "inputs", "error"} <= failure.keys():
            return None
        if built is not None and built.timestamp >= failure["at"]:
            return None
        if failure["code_version"] != self.graph.get(key).code_version or failure["inputs"] != self.inputs(key):
            return None
        if failure.get("environment") != environment():
            return None
        return f"failed in run {failure['run'][:8]} with the same definition and inputs: {failure['error']}"

    def built(self, key: dg.AssetKey) -> Built | None:
        """The latest materialization of ``key``, or None when it was never built."""
        return self._built.get(key)

    def partitioned(self, key: dg.AssetKey) -> bool:
        """True when ``key`` is a partitioned asset of the code location (built partition by partition)."""
        return self.graph.has(key) and self.graph.get(key).partitions_def is not None

    def partitions(self, key: dg.AssetKey) -> PartitionRecord:
        """The per-partition record of partitioned asset ``key`` (read once)."""
        if key not in self._partitions:
            self._partitions[key] = PartitionRecord(self.instance, self.graph, key)
        return self._partitions[key]

    def partition_reasons(self, key: dg.AssetKey, partitions: Sequence[str] | None = None) -> dict[str, list[Reason]]:
        """Why each partition of ``key`` (of ``partitions``; all when None) must be rebuilt; only those that must."""
        record = self.partitions(key)
        chosen = record.keys() if partitions is None else partitions
        return record.reasons(chosen, self.data_version, self.waiting(key, chosen))

    def waiting(self, key: dg.AssetKey, partitions: Sequence[str]) -> set[str]:
        """The partitions of ``partitions`` of ``key`` that wait for data, never built.

        A sourced one whose files its source has not seen; a derived one whose input's same
        partition waits, or one of the partitions its window reads (a day that has not landed
        holds what derives from it too, without failing).
        """
        record = self.partitions(key)
        found = set(record.unseen(partitions))
        for parent in self.graph.get(key).parent_keys:
            node = self.graph.get(parent)
            if node.partitions_def is not None and parent not in self.graph.observable_asset_keys:
                read = {p: record.window(parent, p) for p in partitions}
                held = self.waiting(parent, sorted({k for keys in read.values() for k in keys}))
                found |= {p for p, keys in read.items() if held.intersection(keys)}
        return found - set(record.built)

    def data_version(self, key: dg.AssetKey) -> str | None:
        """The current data version of ``key`` (:func:`current_data_version`, read in bulk).

        A partitioned asset's, as an unpartitioned asset that reads all of it records it: Dagster's
        hash of every partition's version (:func:`combined_version`).
        """
        if self.partitioned(key) and key not in self.graph.observable_asset_keys:
            if key not in self._combined:
                self._combined[key] = combined_version(self.partitions(key), self._built.get(key))
            return self._combined[key]
        built = self._built.get(key)
        if built is not None:
            return built.data_version
        if key in self._observed:
            return self._observed[key]
        if key not in self._other:  # an external asset, or one observed but never materialized
            self._other[key] = current_data_version(self.instance, key)
        return self._other[key]

    def reasons(self, key: dg.AssetKey, stores: StoredOutputs | None) -> list[Reason]:
        """Why ``key`` must be rebuilt; empty when what was built is still current.

        A partitioned asset's are its partitions' in one reason (``3 of 10 partitions: …``).
        """
        if self.partitioned(key):
            return partitions_said(self.partition_reasons(key), len(self.partitions(key).keys()))
        built = self._scored_by(key, self._built.get(key))
        node = self.graph.get(key)
        inputs = self.inputs(key) if built is not None else {}
        found = [self._alias_moved(r, built) for r in out_of_date(built, node.code_version, inputs)]
        if not found and (problem := self.lost(key, stores)) is not None:
            found.append(Reason(Why.OUTPUT_LOST, problem))
        return found

    def _scored_by(self, key: dg.AssetKey, built: Built | None) -> Built | None:
        """A predictions table's record with the version that scored it as its alias input.

        Dagster reads input versions when the step starts; the alias may move before the table
        reads it. Its ``model_version`` metadata is what scored it, so that is what is compared.
        """
        if built is None or PREDICTIONS_METADATA not in (self.graph.get(key).metadata or {}):
            return built
        version = built.metadata.get("model_version")
        sources = [p for p in self.graph.get(key).parent_keys if ALIAS_METADATA in (self.graph.get(p).metadata or {})]
        if version is None or not sources:
            return built
        return replace(built, inputs={**built.inputs, sources[0].to_user_string(): str(version)})

    def _alias_moved(self, reason: Reason, built: Built | None) -> Reason:
        """``reason`` as an alias move when its input is an alias source: ``shop.clf@champion moved v1 → v2``."""
        if reason.why not in (Why.NEW_DATA, Why.NEW_INPUT) or built is None:
            return reason
        source = dg.AssetKey.from_user_string(reason.subject)
        alias = (self.graph.get(source).metadata or {}).get(ALIAS_METADATA) if self.graph.has(source) else None
        if alias is None:
            return reason
        before, now = (_held_by(v) for v in (built.inputs.get(reason.subject), self.data_version(source)))
        moved = f"moved {before} → {now}" if before else f"is {now}"
        return Reason(Why.ALIAS_MOVED, f"{alias} {moved}")

    def lost(self, key: dg.AssetKey, stores: StoredOutputs | None) -> str | None:
        """Why what ``key`` last built is gone from the stores; None when it is there, never built, or not asked."""
        built = self._built.get(key)
        if built is None or stores is None:
            return None
        if key not in self._missing_outputs:
            self._missing_outputs[key] = stores.missing(key, built)
        return self._missing_outputs[key]


_RECORDS: weakref.WeakKeyDictionary[Any, Record] = weakref.WeakKeyDictionary()


def record_for(context: dg.AutomationContext) -> Record:
    """The record of this evaluation (read once, shared by every asset's condition)."""
    view = asset_graph_view(context)
    if view not in _RECORDS:
        _RECORDS[view] = Record(view.instance, context.asset_graph)
    return _RECORDS[view]


class OutOfDate(dg.AutomationCondition):
    """True when the asset is missing, or its code, an input's data or a stored output changed since it was built."""

    def __init__(self, stores: StoredOutputs | None = None) -> None:
        """``stores`` answers whether a recorded output still exists (None: not asked)."""
        self.stores = stores

    @property
    def requires_cursor(self) -> bool:  # noqa: D102
        return False

    @property
    def name(self) -> str:  # noqa: D102
        return "out_of_date"

    @property
    def description(self) -> str:  # noqa: D102
        return "never built, definition changed, an input has new data, or its stored output is gone"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # noqa: D102
        record = record_for(context)
        if record.partitioned(context.key):  # type: ignore[arg-type]
            return self._partitions(context, record)
        reasons = record.reasons(context.key, self.stores)  # type: ignore[arg-type]
        held = record.held(context.key) if reasons else None  # type: ignore[arg-type]
        subset = context.candidate_subset if reasons and held is None else context.get_empty_subset()
        metadata = {"reasons": said(reasons), "reason_kinds": ", ".join(r.why for r in reasons)} if reasons else {}
        if held is not None:
            metadata["held"] = held
        return dg.AutomationResult(context, subset, metadata=metadata or None)

    def _partitions(self, context: dg.AutomationContext, record: Record) -> dg.AutomationResult:
        """The candidate partitions that are out of date (:mod:`assets.automation.partition_record`)."""
        candidates = sorted(context.candidate_subset.expensively_compute_partition_keys())
        reasons = record.partition_reasons(context.key, candidates)  # type: ignore[arg-type]
        subset = context.candidate_subset.compute_intersection_with_partition_keys(set(reasons))
        total = len(record.partitions(context.key).keys())  # type: ignore[arg-type]
        said_all = partitions_said(reasons, total)
        metadata = {"reasons": said(said_all), "reason_kinds": Why.PARTITIONS.value} if reasons else None
        return dg.AutomationResult(context, subset, metadata=metadata)


def combined_version(record: PartitionRecord, latest: Built | None) -> str | None:
    """The input data version Dagster records for an unpartitioned asset reading every partition of ``record``.

    Under :data:`PARTITIONS_HASHED` partitions, a hash of the partitions' versions in key order;
    at or above it (Dagster then skips the per-partition query), the latest materialization's.
    """
    import hashlib

    keys = record.keys()
    if len(keys) >= PARTITIONS_HASHED:
        return latest.data_version if latest is not None else None
    versions = record.versions(record.key)
    current = set(keys)
    read = [versions[k] for k in sorted(versions) if k in current]
    if not read:
        return None
    return hashlib.sha256("".join(read).encode()).hexdigest()


def partitions_said(reasons: dict[str, list[Reason]], total: int) -> list[Reason]:
    """Per-partition reasons as one: ``3 of 10 partitions: 2 never built, 1 definition changed (2026-01-01 …)``."""
    if not reasons:
        return []
    counts: dict[str, int] = {}
    for why in reasons.values():
        for reason in why:
            shown = "never built" if reason.why is Why.FIRST_BUILD else str(reason).split("[")[0].strip()
            if reason.why is Why.NEW_DATA:
                shown = f"{reason.subject.split('[')[0]} has new data"
            counts[shown] = counts.get(shown, 0) + 1
    keys = sorted(reasons)
    span = keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]}"
    parts = ", ".join(f"{n} {what}" for what, n in counts.items())
    return [Reason(Why.PARTITIONS, f"{len(reasons)} of {total} partitions: {parts} ({span})")]


def running_assets(instance: dg.DagsterInstance) -> set[dg.AssetKey]:
    """The assets some unfinished run of the instance targets."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED)))
    return {k for run in runs for k in run.asset_selection or ()}


def failed_blocking_checks(instance: dg.DagsterInstance, graph: Any, key: dg.AssetKey) -> list[str]:
    """The blocking checks of ``key`` whose latest evaluation failed."""
    blocking = [c for c in graph.get_check_keys_for_assets({key}) if graph.get(c).blocking]
    if not blocking:
        return []
    return sorted(c.name for c in failed_checks(instance, blocking))


REBUILD_RULE = "slipway rebuild"


class Guard(StrEnum):
    """The parts of the rule after :class:`OutOfDate`, by the label the UI shows for each.

    An out-of-date asset waits while one of them is false; :mod:`assets.automation.holds` reads
    which one from Dagster's evaluation.
    """

    NOT_RUNNING = "no run of it in progress"
    NO_UPSTREAM_RUNNING = "no run of an upstream in progress"
    NO_UPSTREAM_MISSING = "no upstream missing"
    UPSTREAM_CHECKS_PASSED = "upstream blocking checks passed"


def rebuild_condition(stores: StoredOutputs | None = None) -> dg.AutomationCondition:
    """The shared predicate: out of date, and nothing upstream is missing, running or failing a blocking check."""
    upstream_missing = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.missing() & ~dg.AutomationCondition.will_be_requested()
    )
    return (
        OutOfDate(stores)
        # Labels as plain text: the code location's snapshot serializes them (an enum would not load in the UI).
        & (~dg.AutomationCondition.in_progress()).with_label(Guard.NOT_RUNNING.value)
        & (~dg.AutomationCondition.any_deps_in_progress()).with_label(Guard.NO_UPSTREAM_RUNNING.value)
        & (~upstream_missing).with_label(Guard.NO_UPSTREAM_MISSING.value)
        & dg.AutomationCondition.all_deps_blocking_checks_passed().with_label(Guard.UPSTREAM_CHECKS_PASSED.value)
    ).with_label(REBUILD_RULE)


def requested(result: Any, keys: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    """The keys of ``keys`` an evaluation result requests, in the given order."""
    return [key for key in keys if result.get_num_requested(key)]


def _held_by(version: str | None) -> str | None:
    """An alias source's data version as words: ``v3``, or ``no version`` (``none``: nothing holds it)."""
    if version is None:
        return None
    return "no version" if version == "none" else f"v{version}"
