"""The rebuild predicate per partition: which partitions of a partitioned asset need building, and why.

A partition is rebuilt when it was never built (and its files are there: a partition whose
source has seen no file waits), when its latest attempt failed, when its code
version differs from the one its materialization recorded, or when what it read changed: its
source files (the fingerprint it recorded, :data:`assets.data.dataset_asset.SOURCE_VERSION`,
against its source's latest observation of that partition), the same partition of a partitioned
input, or an unpartitioned input. Everything is read from the Dagster instance, a few queries per
asset whatever the number of partitions, so `slipway run`, `slipway backfill`, `slipway plan` and
the automation sensor all answer the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from assets.automation.staleness import DATA_VERSION_TAG, Built, Reason, Why
from assets.data.batches import partitions_version
from assets.data.dataset_asset import SOURCE_VERSION
from assets.data.partitioning import NO_FILES

#: What ``--only`` may ask for, and which reasons each takes.
ONLY = ("missing", "failed", "stale")


def partition_input_version(versions: Mapping[str, str], read: Sequence[str]) -> str | None:
    """The input data version Dagster records for the partitions ``read`` of an input (a hash of ``versions``).

    One partition of a partitioned input, or a rolling window of them
    (:func:`assets.data.batches.partitions_version`); None when none of them was built.
    """
    if not any(p in versions for p in read):
        return None
    return partitions_version(versions, list(read))


class PartitionRecord:
    """The instance's record of one partitioned asset, per partition, read once."""

    def __init__(self, instance: dg.DagsterInstance, graph: Any, key: dg.AssetKey) -> None:
        """Read the latest materialization and status of every partition of ``key``."""
        self.instance, self.graph, self.key = instance, graph, key
        node = graph.get(key)
        self.partitions_def = node.partitions_def
        storage = instance.event_log_storage
        ids = storage.get_latest_storage_id_by_partition(key, dg.DagsterEventType.ASSET_MATERIALIZATION)
        self.built: dict[str, Built] = {}
        if ids:
            found = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, storage_ids=list(ids.values())), limit=len(ids)
            ).records
            self.built = {r.partition_key: Built.of(r) for r in found if r.partition_key is not None}
        self._versions: dict[dg.AssetKey, dict[str, str]] = {}
        self._keys: list[str] | None = None
        self._position: dict[str, int] = {}
        #: The partitions :meth:`reasons` found held: refused, and given nothing new since (why, for their row).
        self.held: dict[str, str] = {}

    def keys(self) -> list[str]:
        """Every partition key of the asset now (dynamic ones as the instance holds them)."""
        return list(self.partitions_def.get_partition_keys(dynamic_partitions_store=self.instance))

    def failed(self, partitions: Sequence[str]) -> set[str]:
        """The partitions of ``partitions`` whose latest attempt failed."""
        status = self.instance.get_status_by_partition(self.key, list(partitions), self.partitions_def)
        return {p for p, s in (status or {}).items() if s == dg.AssetPartitionStatus.FAILED}

    def versions(self, parent: dg.AssetKey) -> dict[str, str]:
        """The current data version of each partition of ``parent``: its latest materialization's (or observation)."""
        if parent not in self._versions:
            storage = self.instance.event_log_storage
            kind = (
                dg.DagsterEventType.ASSET_OBSERVATION
                if parent in self.graph.observable_asset_keys
                else dg.DagsterEventType.ASSET_MATERIALIZATION
            )
            tags = storage.get_latest_tags_by_partition(parent, kind, [DATA_VERSION_TAG])
            self._versions[parent] = {
                p: t[DATA_VERSION_TAG] for p, t in tags.items() if t.get(DATA_VERSION_TAG) not in (None, NO_FILES)
            }
        return self._versions[parent]

    def reasons(
        self,
        partitions: Sequence[str],
        unpartitioned: Callable[[dg.AssetKey], str | None],
        waiting: set[str] | frozenset[str] = frozenset(),
    ) -> dict[str, list[Reason]]:
        """Why each of ``partitions`` must be rebuilt (only those that must).

        ``unpartitioned(key)`` is the current data version of an unpartitioned input; a partition
        of ``waiting`` never built waits for its data (:meth:`unseen`, or an input's that waits).
        """
        node = self.graph.get(self.key)
        failed = self.failed(partitions)
        held = self._held(failed)
        self.held.update(held)
        found: dict[str, list[Reason]] = {}
        for partition in partitions:
            if partition in held:  # refused, and given the same since: the same data fails the same checks
                continue
            built = self.built.get(partition)
            if built is None and partition in waiting:  # no file yet: waits for its data, is not tried
                continue
            if built is None:  # never built: missing, or failed if it was tried
                found[partition] = [Reason(Why.FAILED if partition in failed else Why.FIRST_BUILD)]
                continue
            why: list[Reason] = []
            if partition in failed:
                why.append(Reason(Why.FAILED))
            if node.code_version is not None and built.code_version != node.code_version:
                why.append(Reason(Why.DEFINITION_CHANGED))
            why += self._inputs_changed(partition, built, unpartitioned)
            if why:
                found[partition] = why
        return found

    def held_now(self) -> dict[str, str]:
        """Every held partition (:meth:`_held`) and why, in the definition's order: two queries when none failed."""
        keys = self.keys()
        held = self._held(self.failed(keys))
        return {p: held[p] for p in keys if p in held}

    def _held(self, failed: set[str]) -> dict[str, str]:
        """The partitions of ``failed`` whose data was refused and that nothing new was given since, and why.

        As for an unpartitioned dataset (:meth:`assets.automation.rebuild.Record.held`): the same
        definition, environment and inputs, where an input is new when its partition (or, for an
        unpartitioned input, the input) was recorded after the refused attempt started.
        """
        from assets.data.failures import environment, failure_name
        from resources.dagster_private import cursor_values

        if not failed:
            return {}
        names = {failure_name(self.key, p): p for p in failed}
        found = {}
        for name, value in cursor_values(self.instance, set(names)).items():
            partition = names[name]
            try:
                failure = json.loads(value)
            except ValueError:
                continue  # not one this version wrote: it holds nothing
            if not isinstance(failure, dict) or not {"at", "run", "code_version", "seen", "error"} <= failure.keys():
                continue
            built = self.built.get(partition)
            if built is not None and built.timestamp >= failure["at"]:
                continue
            if failure["code_version"] != self.graph.get(self.key).code_version:
                continue
            if failure.get("environment") != environment() or self._given_since(partition, int(failure["seen"])):
                continue
            error = str(failure["error"])
            if error.startswith("pipeline "):  # "pipeline p, dataset d, partition k: …": said by the row
                error = error.split(": ", 1)[-1]
            found[partition] = f"partition {partition} refused in run {failure['run'][:8]}: {error}"
        return found

    def _given_since(self, partition: str, seen: int) -> bool:
        """True when an input of ``partition`` was recorded after event ``seen`` (a file observed anew, say)."""
        storage = self.instance.event_log_storage
        for parent in self.graph.get(self.key).parent_keys:
            observed = parent in self.graph.observable_asset_keys
            kind = dg.DagsterEventType.ASSET_OBSERVATION if observed else dg.DagsterEventType.ASSET_MATERIALIZATION
            if self.graph.get(parent).partitions_def is not None:
                wanted = set(self.window(parent, partition))
                ids = list(storage.get_latest_storage_id_by_partition(parent, kind, partitions=wanted).values())
            else:
                fetch = self.instance.fetch_observations if observed else self.instance.fetch_materializations
                ids = [r.storage_id for r in fetch(parent, limit=1).records]
            if any(i > seen for i in ids):
                return True
        return False

    def window(self, parent: dg.AssetKey, partition: str) -> list[str]:
        """The partitions of partitioned input ``parent`` that ``partition`` reads: its own, or a rolling window's."""
        from assets.data.dataset_asset import WINDOWS_METADATA

        windows = self.graph.get(self.key).metadata.get(WINDOWS_METADATA)
        size = (getattr(windows, "value", windows) or {}).get(parent.to_user_string())
        if size is None:
            return [partition]
        if self._keys is None:
            self._keys = self.keys()
            self._position = {k: i for i, k in enumerate(self._keys)}
        if partition not in self._position:
            return [partition]
        end = self._position[partition] + 1
        return self._keys[max(0, end - int(size)) : end]

    def unseen(self, partitions: Sequence[str]) -> list[str]:
        """The partitions of ``partitions`` of a sourced dataset whose files its source has not seen (yet).

        Its source's latest observation of them found no file: building them could only fail
        (a day whose file has not landed, say), so they wait, unlike a partition whose build failed.
        """
        sources = [p for p in self.graph.get(self.key).parent_keys if p in self.graph.observable_asset_keys]
        source = next((p for p in sources if self.graph.get(p).partitions_def is not None), None)
        if source is None:
            return []
        seen = self.versions(source)
        return [p for p in partitions if p not in seen]

    def _inputs_changed(
        self, partition: str, built: Built, unpartitioned: Callable[[dg.AssetKey], str | None]
    ) -> list[Reason]:
        found = []
        for parent in sorted(self.graph.get(self.key).parent_keys, key=lambda k: k.to_user_string()):
            name = parent.to_user_string()
            if self.graph.get(parent).partitions_def is None:
                current, recorded = unpartitioned(parent), built.inputs.get(name)
            elif parent in self.graph.observable_asset_keys:
                current, recorded = self.versions(parent).get(partition), built.metadata.get(SOURCE_VERSION)
            else:
                versions = self.versions(parent)
                current = partition_input_version(versions, self.window(parent, partition))
                recorded = built.inputs.get(name)
            if current is not None and current != recorded:
                found.append(Reason(Why.NEW_DATA, f"{name}[{partition}]"))
        return found


def only(reasons: dict[str, list[Reason]], wanted: str) -> list[str]:
    """The partitions of ``reasons`` that ``--only wanted`` takes: ``missing``, ``failed`` or ``stale`` (any reason)."""
    if wanted == "missing":
        return [p for p, why in reasons.items() if any(r.why is Why.FIRST_BUILD for r in why)]
    if wanted == "failed":
        return [p for p, why in reasons.items() if any(r.why is Why.FAILED for r in why)]
    return list(reasons)
