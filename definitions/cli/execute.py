"""The engine under `slipway run`: the code location on the stack's instance.

It observes file sources, asks the shared rebuild predicate what is out of date, launches runs
with the stack's executor and reads every outcome back from the instance's event log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from assets.automation.rebuild import (
    DATA_VERSION_TAG,
    Built,
    Record,
    failed_blocking_checks,
    requested,
)
from definitions.cli import dead_runs, events, settling
from definitions.cli.outcomes import AssetOutcome
from definitions.definitions import build_definitions
from resources.errors import DefinitionError, SlipwayError
from stacks import LoadedStack

if TYPE_CHECKING:
    from assets.automation.holds import Held

#: The run tag that makes a run build one partition of its partitioned assets (Dagster's).
PARTITION_TAG = "dagster/partition"
#: Dagster's run tags for a run over a range of partitions.
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@dataclass
class Decision:
    """One evaluation's answer for the selected assets: what to build now, on which record, and what held the rest."""

    todo: list[dg.AssetKey]
    record: Record
    holds: dict[dg.AssetKey, Held | None] = field(default_factory=dict)
    #: The partitions to build of each partitioned asset of ``todo``.
    partitions: dict[dg.AssetKey, list[str]] = field(default_factory=dict)


class Engine:
    """The code location and the stack's Dagster instance, for one `slipway run`."""

    def __init__(self, loaded: LoadedStack, folder: Any) -> None:
        """Assemble the code location (:func:`build_definitions`) and open the stack's instance."""
        from assets.automation.stores import StackStores
        from stacks.build import build_resources, open_instance

        #: A stack whose runs the Dagster deployment launches (k8s_job): `slipway run` only reads its
        #: record and says what is current; it writes nothing there (no observations of this
        #: checkout's files, no dead-run cleanup or settling, no alias moves) and launches nothing.
        self.read_only = not loaded.stack.orchestrator.cli_launch
        self.loaded = loaded
        self.folder = folder
        self.stores = StackStores(build_resources(loaded.stack), remember=True)
        # The deployed code location, as the UI and sensors load it.
        self.defs = build_definitions(folder, loaded, self.stores)
        self.graph = self.defs.resolve_asset_graph()
        self.job = self.defs.resolve_implicit_global_asset_job_def()
        self.instance = open_instance(loaded.stack, read_only=self.read_only)
        self.registry_down = False
        self.pending: set[dg.AssetKey] = set()
        if self.read_only:
            return
        from assets.model.sweep_asset import sweep_pools
        from resources.dagster_private import set_pool_limits

        set_pool_limits(self.instance, sweep_pools(self.graph.assets_defs))
        dead = dead_runs.end_dead_runs(self.instance)
        if dead:
            dead_runs.free_dead_pool_slots(self.instance)
        # Settled by settle_pending once the run's selection is known: a model of a pipeline this
        # run does not touch waits for a run that does (its stores may be down).
        self.pending = {key for run in dead for key in (run.asset_selection or self.graph.materializable_asset_keys)}
        from assets.model.recovery import unsettled

        self.pending |= {dg.AssetKey.from_user_string(k) for k in unsettled(self.instance)}

    def settle_pending(self, selected: Sequence[dg.AssetKey]) -> None:
        """Settle the models among ``selected`` that died or could not be settled before."""
        chosen = self.pending & set(selected)
        if chosen:
            self._settle(chosen)

    def _settle(self, keys: set[dg.AssetKey], keep: set[dg.AssetKey] | None = None) -> None:
        """Settle what trainings of the models among ``keys`` left (:func:`definitions.cli.settling.settle`)."""
        settling.settle(self, keys, keep)

    def close(self) -> None:
        """Release the instance."""
        self.instance.dispose()

    def select(self, groups: Sequence[str]) -> list[dg.AssetKey]:
        """The materializable assets of ``groups`` (all when empty) and what they read, upstream first.

        A pipeline that reads another pipeline's dataset (``houses/sales``) brings it, and
        what it reads, into the selection: they are reused when up to date, built when not.
        """
        known = {self.graph.get(k).group_name for k in self.graph.materializable_asset_keys}
        for name in groups:
            if name not in known:
                from assets.spec.metrics import suggest

                raise DefinitionError(f"no pipeline named {name!r}{suggest(name, known)}")
        level = {key: i for i, keys in enumerate(self.graph.toposorted_asset_keys_by_level) for key in keys}
        keys = [
            key
            for key in self.graph.materializable_asset_keys
            if not groups or self.graph.get(key).group_name in groups
        ]
        if groups:
            chosen = set(keys)
            ancestors = {a for key in chosen for a in self.graph.get_ancestor_asset_keys(key)}
            keys += [k for k in ancestors - chosen if k in self.graph.materializable_asset_keys]
        # Pipeline by pipeline, upstream first (the order of the summary table).
        return sorted(keys, key=lambda k: (self.graph.get(k).group_name or "", level[k], k.to_user_string()))

    def source_files(self) -> list[str]:
        """The files whose bytes are the code version of hand-written assets (:func:`source_version`)."""
        from assets.spec.versions import SOURCE_VERSION_PREFIX, asset_source_file

        found = set()
        for key in self.graph.materializable_asset_keys:
            node = self.graph.get(key)
            if (node.code_version or "").startswith(SOURCE_VERSION_PREFIX):
                path = asset_source_file(node.assets_def)
                if path is not None:
                    found.add(path)
        return sorted(found)

    def kind(self, key: dg.AssetKey) -> str:
        """``dataset``, ``model`` or ``asset`` (hand-written)."""
        metadata = self.graph.get(key).metadata
        if "slipway/registered_model" in metadata:
            return "model"
        return "dataset" if "slipway/pipeline" in metadata else "asset"

    def observe(self, versions: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Record a new observation of each source whose data version changed since the last one."""
        if self.read_only:  # this checkout's files are not what the deployment reads
            return
        from assets.data.partitioning import PARTITION_VERSIONS

        record = Record(self.instance, self.graph)
        for name, (version, metadata) in versions.items():
            key = dg.AssetKey.from_user_string(name)
            if PARTITION_VERSIONS in metadata:
                if key in self.graph.observable_asset_keys:
                    self._observe_partitions(key, metadata)
                continue
            if key in self.graph.observable_asset_keys and record.data_version(key) != version:
                self.instance.report_runless_asset_event(
                    dg.AssetObservation(asset_key=key, tags={DATA_VERSION_TAG: version}, metadata=metadata)
                )

    def _observe_partitions(self, key: dg.AssetKey, observed: dict[str, Any]) -> None:
        """Record each partition of source ``key`` whose files changed; add the partitions files brought (dynamic)."""
        from assets.data.partitioning import PARTITION_KEYS, PARTITION_VERSIONS, record_observations

        partitions = self.graph.get(key).partitions_def
        if partitions is not None:
            versions, keys = observed[PARTITION_VERSIONS], observed[PARTITION_KEYS]
            record_observations(self.instance, key, partitions, versions, keys)

    def observe_aliases(self, keys: Sequence[dg.AssetKey]) -> None:
        """Observe which version holds each alias the selected predictions tables are scored by.

        An alias that does not exist yet is not observed (its tables wait for a promotion).
        """
        from assets.spec.tags import ALIAS_METADATA

        found = {}
        for key in keys:
            for parent in self.graph.get(key).parent_keys:
                alias = (self.graph.get(parent).metadata or {}).get(ALIAS_METADATA)
                if alias is not None and parent in self.graph.observable_asset_keys:
                    name, _, wanted = str(alias).rpartition("@")
                    try:
                        version = self.stores.registry.aliases(name).get(wanted)
                    except SlipwayError:  # the registry is down: the tables it scores wait, nothing else does
                        continue
                    if version is not None:
                        found[parent.to_user_string()] = (str(version), {"version": str(version)})
        if found:
            self.observe(found)

    def record(self) -> Record:
        """The instance's record of this code location's assets, as it is now."""
        return Record(self.instance, self.graph)

    def decide(self, keys: Sequence[dg.AssetKey]) -> Decision:
        """What to build now, the record it was decided on, and what held the rest back.

        What Dagster's evaluation of the deployed rules requests, and, since a person asked, the
        models it held back only for their retrain policy (out of date by new data alone). What
        held each asset back is read from the same evaluation (:func:`assets.automation.holds.held_back`).
        """
        from assets.automation.holds import Hold, held_back

        self.observe_aliases(keys)
        try:
            result = dg.evaluate_automation_conditions(
                defs=self.defs, instance=self.instance, asset_selection=dg.AssetSelection.assets(*keys)
            )
        except Exception as exc:
            # Dagster wraps what a condition raised (a registry that is down, say); show ours.
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, SlipwayError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise cause from exc
            raise
        holds = {k: held_back(result, k) for k in keys}
        wanted = set(requested(result, keys))
        wanted |= {k for k, held in holds.items() if held is not None and held.hold is Hold.RETRAIN_POLICY}
        todo = [k for k in keys if k in wanted]
        partitions = {
            k: sorted(p for p in result.get_requested_partitions(k) if p is not None)
            for k in todo
            if self.graph.get(k).partitions_def is not None
        }
        return Decision(todo, Record(self.instance, self.graph), holds, partitions)

    def all_partitions(self, key: dg.AssetKey) -> list[str]:
        """Every partition key of partitioned asset ``key`` now (dynamic ones as the instance holds them)."""
        return self.record().partitions(key).keys()

    def launch_partitions(
        self, keys: Sequence[dg.AssetKey], partitions: dict[dg.AssetKey, list[str]], reasons: dict[dg.AssetKey, str]
    ) -> tuple[list[str], dict[dg.AssetKey, AssetOutcome]]:
        """Build ``partitions`` of each of ``keys``: a run per partition, or per range (:mod:`partition_runs`).

        Each run is recorded when it ends, so a command killed part way leaves the finished
        partitions built: the next run or backfill does not redo them.
        """
        from definitions.cli import partition_runs

        return partition_runs.launch_partitions(self, keys, partitions, reasons)

    def launch(
        self,
        keys: Sequence[dg.AssetKey],
        reasons: dict[dg.AssetKey, str],
        partition: str | None = None,
        span: tuple[str, str] | None = None,
    ) -> tuple[str, dict[dg.AssetKey, AssetOutcome]]:
        """Materialize ``keys`` (their ``partition``, or the range ``span``) in one run; outcomes from its events."""
        import gc

        if self.read_only and set(reasons.values()) == {"--force"}:
            raise SlipwayError(
                f"stack {self.loaded.name}: --force launches a run, and `slipway run` does not launch on "
                f"{self.loaded.stack.orchestrator.type}: runs go through the Dagster deployment"
            )
        if self.read_only:
            names = ", ".join(k.to_user_string() for k in keys[:5]) + (" …" if len(keys) > 5 else "")
            raise SlipwayError(
                f"stack {self.loaded.name}: {len(keys)} asset(s) need building ({names}); `slipway run` does "
                f"not launch on {self.loaded.stack.orchestrator.type}: runs go through the Dagster "
                "deployment (its UI, sensors, or `dagster job launch`)"
            )
        # Everything imported so far lives until exit: keep it out of every later collection.
        gc.freeze()
        dead_runs.free_dead_pool_slots(self.instance)
        from definitions.paths import DEFS_ENV
        from stacks.launch import Launch

        run = Launch(
            job=self.job,
            instance=self.instance,
            keys=keys,
            # The summary table reports failures; Dagster's console log would repeat them with
            # stack traces. The event log keeps everything for the UI.
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            tags={
                "slipway/stack": self.loaded.name,
                "slipway/command": "run",
                **dead_runs.owner_tags(),
                **({PARTITION_TAG: partition} if partition is not None else {}),
                **({RANGE_START_TAG: span[0], RANGE_END_TAG: span[1]} if span is not None else {}),
            },
            env={
                "SLIPWAY_STACK": self.loaded.reference,
                DEFS_ENV: str(Path(self.folder).resolve()) if self.folder is not None else None,
            },
        )
        result = self.loaded.stack.orchestrator.launch(run)
        # Settle what the run's failed models left now (one that failed after its version was
        # promoted may still be up to date, and then no next training comes). A model whose
        # step failed on a store is kept for the next run instead: trying now would only wait
        # out the same retries again. (A model delivered whose MLflow run could not be closed
        # put itself on that list.)
        failed = self.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        failed_steps = {entry.step_key for entry in failed}
        if not result.success:
            self._alert_failure(result.run_id, failed)
        unreachable = events.failed_on_a_store(failed)
        self.registry_down = self.registry_down or bool(unreachable)
        self._settle(
            {k for k in keys if self._step(k) in failed_steps - unreachable},
            keep={k for k in keys if self._step(k) in unreachable},
        )
        return result.run_id, self.outcomes(result.run_id, keys, reasons)

    def _alert_failure(self, run_id: str, failed: Any) -> None:
        """Alert (the stack's alerter) on this command's failed run: the run failure sensor leaves it to us."""
        import logging

        from assets.automation.run_failures import refused_only, root_message, run_failure_alert, run_interrupted_alert

        run = self.instance.get_run_by_id(run_id)
        errors = [e.dagster_event.event_specific_data.error for e in failed if events.has_error(e)]
        if run is None or refused_only(errors):
            return  # refused data was alerted by its dataset
        if events.interrupted_run(run, failed):
            alert = run_interrupted_alert(run)
        else:
            alert = run_failure_alert(run, root_message(errors[0]) if errors else "")
        # On the terminal with the run's progress (a webhook's retries too, said once).
        self.stores.resources["alerter"].send(alert, logging.getLogger("slipway.progress"))

    def outcomes(
        self, run_id: str, keys: Sequence[dg.AssetKey], reasons: dict[dg.AssetKey, str]
    ) -> dict[dg.AssetKey, AssetOutcome]:
        """What happened to each of ``keys`` in run ``run_id`` (:func:`definitions.cli.events.read_outcomes`)."""
        return events.read_outcomes(self.instance, self.graph, run_id, keys, reasons, self.kind)

    def _step(self, key: dg.AssetKey) -> str:
        return events.step_of(self.graph, key)

    def reused(self, key: dg.AssetKey, built: Built) -> AssetOutcome:
        """The row of an asset the record says is up to date: what it reuses, and from which run."""
        outcome = AssetOutcome(key.to_user_string(), self.kind(key), "reused", dagster_run_id=built.run_id)
        events.from_metadata(outcome, built.metadata)
        outcome.detail = f"unchanged since run {built.run_id[:8]}"
        failed = self.failed_blocking_checks(key)
        if failed:
            outcome.status = "failed"
            outcome.detail = f"check failed: {', '.join(failed)} (run {built.run_id[:8]}); unchanged since"
        return outcome

    def failed_blocking_checks(self, key: dg.AssetKey) -> list[str]:
        """The blocking checks of ``key`` whose latest evaluation failed."""
        return failed_blocking_checks(self.instance, self.graph, key)
