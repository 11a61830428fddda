"""The engine under `slipway run`: the code location on the stack's instance.

It observes file sources, asks the shared rebuild predicate what is out of date, launches runs
with the stack's executor and reads every outcome back from the instance's event log.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from assets.automation.rebuild import (
    DATA_VERSION_TAG,
    UNFINISHED,
    Built,
    Record,
    failed_blocking_checks,
    requested,
    running_assets,
)
from definitions.cli.outcomes import AssetOutcome
from definitions.definitions import build_definitions
from resources.artifacts import ARTIFACT_STORE_ERROR
from resources.errors import DefinitionError, SlipwayError
from stacks import LoadedStack, slipway_home


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


class Engine:
    """The code location and the stack's Dagster instance, for one `slipway run`."""

    def __init__(self, loaded: LoadedStack, folder: Any) -> None:
        """Assemble the code location (:func:`build_definitions`) and open the stack's instance."""
        from assets.automation.stores import StackStores
        from stacks.build import build_resources, open_instance

        if loaded.stack.orchestrator.cli_launch is None:  # before anything touches the deployment's record
            raise SlipwayError(
                f"stack {loaded.name}: `slipway run` does not launch on {loaded.stack.orchestrator.type}: "
                "runs go through the Dagster deployment (its UI, sensors, or `dagster job launch`)"
            )
        self.loaded = loaded
        self.folder = folder
        self.stores = StackStores(build_resources(loaded.stack), remember=True)
        # A person asked: whatever is out of date is rebuilt (a model's retrain policy is for sensors).
        self.defs = build_definitions(folder, loaded, self.stores, asked=True)
        self.graph = self.defs.resolve_asset_graph()
        self.job = self.defs.resolve_implicit_global_asset_job_def()
        self.instance = open_instance(loaded.stack)
        self._running: set[dg.AssetKey] | None = None
        self.registry_down = False
        dead = _end_dead_runs(self.instance)
        if dead:
            _free_dead_pool_slots(self.instance)
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
        """Settle what trainings of the models among ``keys`` left in MLflow (:func:`assets.model.recovery.settle`).

        Called for the runs found dead and after each launch (a failure Dagster recorded leaves
        its model up to date, so no next training would come to settle it). Models that cannot
        be settled now (the stores are down) are kept in the instance for the next `slipway run`.
        """
        from assets.data import progress
        from assets.model import recovery

        models = sorted(
            (k for k in keys if k in self.graph.materializable_asset_keys and self.kind(k) == "model"),
            key=lambda k: k.to_user_string(),
        )
        keep = keep or set()
        if not models and not keep:  # the common case after a launch: no model failed
            return
        live = running_assets(self.instance)
        left = [k for k in models if k in live]  # a live run of it (from the UI) settles its own work
        left += [k for k in keep if k in self.graph.materializable_asset_keys and self.kind(k) == "model"]
        tracker, registry = self.stores.resources["experiment_tracker"], self.stores.registry
        for i, key in enumerate(k for k in models if k not in live):
            node = self.graph.get(key)
            registered = node.metadata["slipway/registered_model"]
            try:
                with registry.promotion_lock(registered):
                    for line in recovery.settle(self.instance, tracker, registry, key, node.group_name, registered):
                        progress.finished(key.to_user_string(), line)
            except SlipwayError as exc:  # the stores are down: the next `slipway run` tries again
                progress.finished(key.to_user_string(), f"left unsettled for the next run: {exc}")
                left += [k for k in models if k not in live][i:]
                break
        previous = recovery.unsettled(self.instance)
        handled = {k.to_user_string() for k in [*models, *keep]}
        kept = {
            name
            for name in previous
            if name not in handled and dg.AssetKey.from_user_string(name) in self.graph.materializable_asset_keys
        }
        recovery.keep_unsettled(self.instance, sorted({k.to_user_string() for k in left} | kept))

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
        record = Record(self.instance, self.graph)
        for name, (version, metadata) in versions.items():
            key = dg.AssetKey.from_user_string(name)
            if key in self.graph.observable_asset_keys and record.data_version(key) != version:
                self.instance.report_runless_asset_event(
                    dg.AssetObservation(asset_key=key, tags={DATA_VERSION_TAG: version}, metadata=metadata)
                )

    def record(self) -> Record:
        """The instance's record of this code location's assets, as it is now."""
        return Record(self.instance, self.graph)

    def decide(self, keys: Sequence[dg.AssetKey]) -> tuple[list[dg.AssetKey], Record]:
        """The keys the shared predicate requests now, and the record it was decided on."""
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
        return requested(result, keys), Record(self.instance, self.graph)

    def in_progress(self, key: dg.AssetKey) -> bool:
        """True when a run that targets ``key`` or one of its upstreams has not finished."""
        if self._running is None:  # read once: asked for each held-back asset after the launches
            self._running = running_assets(self.instance)
        return bool({key, *self.graph.get(key).parent_keys} & self._running)

    def launch(
        self, keys: Sequence[dg.AssetKey], reasons: dict[dg.AssetKey, str]
    ) -> tuple[str, dict[dg.AssetKey, AssetOutcome]]:
        """Materialize ``keys`` in one run with the stack's executor; outcomes read from the event log."""
        import gc

        # Everything imported so far lives until exit: keep it out of every later collection.
        gc.freeze()
        _free_dead_pool_slots(self.instance)
        launch = self.loaded.stack.orchestrator.cli_launch
        tags = {"slipway/stack": self.loaded.name, "slipway/command": "run", OWNER_TAG: run_owner()}
        # The summary table reports failures; Dagster's console log would repeat them with
        # stack traces. The event log keeps everything for the UI.
        run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
        result: dg.ExecuteInProcessResult | dg.JobExecutionResult
        if launch == "in_process":  # the steps run here, in this process
            result = self.job.execute_in_process(
                instance=self.instance,
                asset_selection=list(keys),
                raise_on_error=False,
                run_config=run_config,
                tags=tags,
            )
        else:  # each step in a process of its own, which loads the same code location
            with _code_location_env(self.loaded.reference, self.folder):
                from dagster._core.definitions.reconstruct import ReconstructableRepository

                # Each step process imports the code location (definitions.definitions:defs) anew.
                repository = ReconstructableRepository.for_module("definitions.definitions", "defs")
                result = dg.execute_job(
                    repository.get_reconstructable_job(self.job.name),
                    instance=self.instance,
                    asset_selection=list(keys),
                    raise_on_error=False,
                    run_config=run_config,
                    tags=tags,
                )
        # Settle what the run's failed models left now (one that failed after its version was
        # promoted may still be up to date, and then no next training comes). A model whose
        # step failed on a store is kept for the next run instead: trying now would only wait
        # out the same retries again. (A model delivered whose MLflow run could not be closed
        # put itself on that list.)
        failed = self.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        failed_steps = {entry.step_key for entry in failed}
        if not result.success:
            self._alert_failure(result.run_id, failed)
        unreachable = _failed_on_a_store(failed)
        self.registry_down = self.registry_down or bool(unreachable)
        self._settle(
            {k for k in keys if self._step(k) in failed_steps - unreachable},
            keep={k for k in keys if self._step(k) in unreachable},
        )
        return result.run_id, self.outcomes(result.run_id, keys, reasons)

    def _alert_failure(self, run_id: str, failed: Any) -> None:
        """Alert (the stack's alerter) on this command's failed run: the run failure sensor leaves it to us."""
        import logging

        from assets.automation.run_failures import refused_only, root_message, run_failure_alert

        run = self.instance.get_run_by_id(run_id)
        errors = [e.dagster_event.event_specific_data.error for e in failed if _has_error(e)]
        if run is None or refused_only(errors):
            return  # refused data was alerted by its dataset
        if _interrupted_run(run, failed):
            alert = _run_interrupted_alert(run)
        else:
            alert = run_failure_alert(run, root_message(errors[0]) if errors else "")
        # On the terminal with the run's progress (a webhook's retries too, said once).
        self.stores.resources["alerter"].send(alert, logging.getLogger("slipway.progress"))

    def outcomes(
        self, run_id: str, keys: Sequence[dg.AssetKey], reasons: dict[dg.AssetKey, str]
    ) -> dict[dg.AssetKey, AssetOutcome]:
        """What happened to each of ``keys`` in run ``run_id``, from the event log alone."""
        by_step: dict[str, list[dg.AssetKey]] = {}
        for key in keys:
            by_step.setdefault(self._step(key), []).append(key)
        outcomes = {
            k: AssetOutcome(k.to_user_string(), self.kind(k), "not run", reason=reasons.get(k, "")) for k in keys
        }
        materialized: dict[dg.AssetKey, str] = {}  # key -> the detail of what it built
        failed_checks: dict[dg.AssetKey, list[str]] = {}
        entries = self.instance.all_logs(run_id)
        for step, seconds in _step_seconds(entries).items():
            for key in by_step.get(step, []):
                outcomes[key].seconds = seconds
        for entry in entries:
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type_value
            if kind == "ASSET_MATERIALIZATION" and event.asset_key in outcomes:
                _materialized(outcomes[event.asset_key], event.step_materialization_data.materialization, run_id)
                materialized[event.asset_key] = outcomes[event.asset_key].detail
            elif kind == "ASSET_CHECK_EVALUATION" and not event.asset_check_evaluation_data.passed:
                data = event.asset_check_evaluation_data
                failed_checks.setdefault(data.asset_key, []).append(self._check_label(data))
            elif kind == "STEP_FAILURE":
                for key in by_step.get(entry.step_key or "", []):
                    outcomes[key].status = "interrupted" if _interrupted(event.step_failure_data) else "failed"
                    outcomes[key].detail = _failure(event.step_failure_data)
        for key, checks in failed_checks.items():
            if key in outcomes:
                _with_checks(outcomes[key], checks, materialized.get(key))
        self._blocked(outcomes, keys)
        return outcomes

    def _check_label(self, data: Any) -> str:
        """A failed check's name, marked "(warning)" unless it blocks (a blocking check of severity ERROR)."""
        key = dg.AssetCheckKey(data.asset_key, data.check_name)
        blocking = key in self.graph.asset_check_keys and self.graph.get(key).blocking
        blocks = blocking and data.severity == dg.AssetCheckSeverity.ERROR
        return data.check_name if blocks else f"{data.check_name} (warning)"

    def _blocked(self, outcomes: dict[dg.AssetKey, AssetOutcome], keys: Sequence[dg.AssetKey]) -> None:
        """Mark each of ``keys`` not run blocked when an upstream in the same run failed or was blocked."""
        for key in keys:
            if outcomes[key].status == "not run":
                self._blocked_by_upstream(outcomes, key)

    def _blocked_by_upstream(self, outcomes: dict[dg.AssetKey, AssetOutcome], key: dg.AssetKey) -> None:
        for parent in sorted(self.graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            upstream = outcomes.get(parent)
            if upstream is not None and upstream.status in ("failed", "interrupted", "blocked"):
                outcomes[key].status = "blocked"
                outcomes[key].detail = f"{upstream.key} {upstream.status}"
                return

    def _step(self, key: dg.AssetKey) -> str:
        """The step key of ``key``'s op (its op's name: assets run in-process, one step per op)."""
        return self.graph.get(key).assets_def.node_def.name

    def reused(self, key: dg.AssetKey, built: Built) -> AssetOutcome:
        """The row of an asset the record says is up to date: what it reuses, and from which run."""
        outcome = AssetOutcome(key.to_user_string(), self.kind(key), "reused", dagster_run_id=built.run_id)
        _from_metadata(outcome, built.metadata)
        outcome.detail = f"unchanged since run {built.run_id[:8]}"
        failed = self.failed_blocking_checks(key)
        if failed:
            outcome.status = "failed"
            outcome.detail = f"check failed: {', '.join(failed)} (run {built.run_id[:8]}); unchanged since"
        return outcome

    def failed_blocking_checks(self, key: dg.AssetKey) -> list[str]:
        """The blocking checks of ``key`` whose latest evaluation failed."""
        return failed_blocking_checks(self.instance, self.graph, key)


@contextlib.contextmanager
def _code_location_env(stack: str, folder: Any) -> Iterator[None]:
    """``SLIPWAY_STACK`` and ``SLIPWAY_DEFS`` set for the step processes started inside, then put back.

    A step process loads the code location from them, as the deployed code server does.
    """
    from definitions.paths import DEFS_ENV

    wanted = {"SLIPWAY_STACK": stack, DEFS_ENV: str(Path(folder).resolve()) if folder is not None else None}
    before = {name: os.environ.get(name) for name in wanted}
    try:
        for name, value in wanted.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _step_seconds(entries: Any) -> dict[str, float]:
    """Wall time of each step, from its start event to its success or failure event."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in started:
            seconds[entry.step_key] = round(entry.timestamp - started[entry.step_key], 3)
    return seconds


def _with_checks(outcome: AssetOutcome, checks: list[str], built: str | None) -> None:
    """Fold failed check names into an outcome: a failed blocking check fails the asset.

    ``built`` is the detail of what the asset materialized in this run (None: nothing).
    """
    names = f"check failed: {', '.join(checks)}"
    if any(not c.endswith("(warning)") for c in checks):
        # Either the data was refused before it was stored (a dataset) or the version was
        # materialized for audit but is not served (a model): the check names say why.
        outcome.status = "failed"
        outcome.detail = f"{names}; {built}" if built is not None else f"{names}; not stored"
    else:
        outcome.detail = f"{names}; {outcome.detail}".rstrip("; ")


def _interrupted(data: Any) -> bool:
    """True when a step failed because the run was interrupted (Ctrl-C), not by an error of its own."""
    source = getattr(data.error_source, "value", data.error_source)
    return source == "INTERRUPT" or getattr(data.error, "cls_name", None) == "DagsterExecutionInterruptedError"


def _interrupted_run(run: Any, failed: Any) -> bool:
    """True when this command's run ended because it was interrupted (a step's failure, or Dagster's own reason).

    Dagster records an interruption that no termination request explains as an unexpected termination.
    """
    if any(_interrupted(entry.dagster_event.step_failure_data) for entry in failed):
        return True
    return run.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"


def _run_interrupted_alert(run: Any) -> Any:
    """The alert for a run stopped by an interrupt: which run, which assets, what stays in use."""
    from resources.alerts import Alert

    assets = ", ".join(sorted(k.to_user_string() for k in run.asset_selection or ())) or run.job_name
    text = (
        "stopped by an interrupt (Ctrl-C) before it finished; the last versions built stay in use, "
        "and the next run builds what is out of date"
    )
    return Alert(
        "run_interrupted",
        f"run {run.run_id[:8]} interrupted ({assets})",
        text,
        fields={"run": run.run_id[:8]},
        run_id=run.run_id,
    )


def _failure(data: Any) -> str:
    """One line for a step failure: the user's error, or the interruption."""
    if _interrupted(data):
        return "interrupted; the last version built stays in use, and the next run builds it if it is out of date"
    source = getattr(data.error_source, "value", data.error_source)
    error = data.error
    # A user-code error is wrapped by Dagster once; its cause is the user's exception.
    if source == "USER_CODE_ERROR" and error.cause is not None:
        error = error.cause
    return _one_line(error.message) or error.cls_name


def _one_line(message: str | None) -> str:
    """The first line of an error message, without the exception class name Dagster adds."""
    first = (message or "").strip().splitlines()[0] if message and message.strip() else ""
    head, sep, rest = first.partition(": ")
    return rest if sep and "." in head and " " not in head else first


def _from_metadata(outcome: AssetOutcome, metadata: Any) -> None:
    outcome.data_version = _value(metadata.get("data_version"))
    if "mlflow_run" in metadata:
        outcome.mlflow_run = _value(metadata["mlflow_run"])
        outcome.model_version = str(_value(metadata["model_version"]))
        outcome.registered_model = _value(metadata.get("registered_model"))
        alias = _value(metadata.get("alias"))
        outcome.alias = None if alias == "none" else alias
        champion = _value(metadata.get("champion_version"))  # the version serving then (a challenger's)
        outcome.champion = None if champion is None else str(champion)
        outcome.detail = _value(metadata.get("promotion")) or ""
        outcome.metrics = {k.removeprefix("metric_"): _value(v) for k, v in metadata.items() if k.startswith("metric_")}
    elif "rows" in metadata:
        outcome.detail = f"{_value(metadata.get('rows'))} rows"


def _materialized(outcome: AssetOutcome, materialization: Any, run_id: str) -> None:
    outcome.status = "built"
    outcome.dagster_run_id = run_id
    _from_metadata(outcome, materialization.metadata)


OWNER_TAG = "slipway/owner"


def run_owner() -> str:
    """Who launched a run: this host and ``SLIPWAY_HOME``, the scope of the run lock (``host:home``)."""
    return f"{socket.gethostname()}:{slipway_home()}"


def _end_dead_runs(instance: Any) -> list[Any]:
    """Mark failed the runs of earlier `slipway run`s from this home that died (killed, power cut) mid-run.

    The caller holds this home's run lock and `slipway run` executes in its own process, so no
    run launched from this home can still be going. Left as STARTED, such a run would count as
    "in progress" for the rebuild rule and hold its assets back forever. Runs another machine
    (or home) launched on a shared instance are theirs: they may well be going.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED), tags={"slipway/command": "run"}))
    dead = [run for run in runs if _launched_by_slipway_run(run)]
    for run in dead:
        instance.report_run_failed(run, "the `slipway run` that launched this run ended before it finished")
    return dead


def _launched_by_slipway_run(run: Any) -> bool:
    """True for a run a `slipway run` from this home launched (a UI re-execution inherits its tags, not its process).

    A run without an owner tag is from before runs had one: a local instance, this home's.
    """
    return (
        run.tags.get("slipway/command") == "run"
        and "dagster/parent_run_id" not in run.tags
        and run.tags.get(OWNER_TAG, run_owner()) == run_owner()
    )


def _has_error(entry: Any) -> bool:
    data = getattr(entry.dagster_event, "event_specific_data", None)
    return getattr(getattr(data, "error", None), "message", None) is not None


def _free_dead_pool_slots(instance: Any) -> None:
    """Free model pool slots held by runs that can no longer release them.

    A `slipway run` killed mid-training leaves its slot claimed in the instance. The caller holds
    this home's run lock, so no other `slipway run` from this home is alive: a slot of such a run
    (or of a finished or unknown run) is debris. Slots of runs launched another way (the UI, a
    sensor, another machine on a shared instance) that are still going are left alone.
    """
    storage = instance.event_log_storage
    holders = {
        slot.run_id
        for key in storage.get_concurrency_keys()
        if key.startswith("slipway-model-")
        for slot in storage.get_concurrency_info(key).claimed_slots
    }
    for run_id in holders:
        record = instance.get_run_by_id(run_id)
        if record is None or record.is_finished or _launched_by_slipway_run(record):
            storage.free_concurrency_slots_for_run(run_id)


def _failed_on_a_store(failures: Any) -> set[str]:
    """The step keys whose failure is a store settling needs, which Slipway could not reach or use.

    That is a ``ResourceError`` of the tracker or registry. The artifact store is not one: when
    only it failed (S3 down after the version was registered), MLflow answers, and the version
    is settled at once instead of staying registered until the next run.
    """
    found = set()
    for entry in failures:
        error = entry.dagster_event.step_failure_data.error
        while error is not None:
            own = error.message.partition(": ")[2]  # the message after the class name
            if error.cls_name == "ResourceError" and not own.startswith(ARTIFACT_STORE_ERROR):
                found.add(entry.step_key)
                break
            error = error.cause
    return found
