"""Run the selected assets in Dagster on the stack's instance and read back what happened."""

from __future__ import annotations

import gc
from typing import Any

from assets.loader import LoadedPipeline
from definitions.incremental import AssetPlan
from definitions.runner import AssetOutcome
from stacks import LoadedStack


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


def execute(
    pipelines: list[LoadedPipeline], loaded: LoadedStack, todo: list[AssetPlan]
) -> tuple[str, dict[str, AssetOutcome]]:
    """Materialize the assets of ``todo`` in one Dagster run; one outcome per asset."""
    import dagster as dg

    from assets.pipeline import build_pipeline_defs
    from stacks.build import build_resources, prepare_instance

    home = prepare_instance(loaded.stack)
    parts = [build_pipeline_defs(p.spec, p.folder) for p in pipelines]
    defs = dg.Definitions.merge(*parts, dg.Definitions(resources=build_resources(loaded.stack)))
    job = defs.resolve_implicit_global_asset_job_def()
    # Everything imported so far lives until exit: keep it out of every later collection.
    gc.freeze()
    selection = [dg.AssetKey(p.key.split("/")) for p in todo]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        _free_dead_pool_slots(instance)
        result = job.execute_in_process(
            instance=instance,
            asset_selection=selection,
            raise_on_error=False,
            # The summary table reports failures; Dagster's console log would repeat them
            # with stack traces. The event log keeps everything for the UI.
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            tags={"slipway/stack": loaded.name, "slipway/command": "run"},
        )
        outcomes = _outcomes(result, todo)
        for step_key, seconds in _step_seconds(instance.all_logs(result.run_id)).items():
            key = step_key.replace("__", "/")
            if key in outcomes:
                outcomes[key].seconds = seconds
        return result.run_id, outcomes


def _free_dead_pool_slots(instance: Any) -> None:
    """Free model pool slots held by runs that can no longer release them.

    A `slipway run` killed mid-training leaves its slot claimed in the instance. The caller holds
    this home's run lock, so no other `slipway run` is alive: a slot of a run tagged
    ``slipway/command: run`` (or of a finished or unknown run) is debris. Slots of runs launched
    another way (the UI, a sensor) that are still going are left alone.
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
        if record is None or record.is_finished or record.tags.get("slipway/command") == "run":
            storage.free_concurrency_slots_for_run(run_id)


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


def _outcomes(result: Any, todo: list[AssetPlan]) -> dict[str, AssetOutcome]:
    by_step = {"__".join(p.key.split("/")): p for p in todo}
    outcomes = {p.key: AssetOutcome(p.key, p.kind, "not run", detail=p.reason) for p in todo}
    failed_checks: dict[str, list[str]] = {}
    for event in result.all_events:
        item = by_step.get(event.step_key or "")
        if event.event_type_value == "ASSET_MATERIALIZATION":
            key = event.asset_key.to_user_string()
            if key not in outcomes:
                continue
            _materialized(outcomes[key], event.step_materialization_data.materialization.metadata, result.run_id)
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.asset_check_evaluation_data
            if not data.passed:
                warn = getattr(data.severity, "value", data.severity) == "WARN"
                name = f"{data.check_name} (warning)" if warn else data.check_name
                failed_checks.setdefault(data.asset_key.to_user_string(), []).append(name)
        elif item is not None and event.is_step_failure:
            error = event.step_failure_data.error
            if error.cls_name == "DagsterAssetCheckFailedError":
                continue  # reported with the failed checks below
            cause = error.cause if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause else error
            outcomes[item.key].status = "failed"
            if cause.cls_name == "DagsterExecutionInterruptedError":
                outcomes[item.key].detail = "interrupted; the next run builds it again"
            else:
                outcomes[item.key].detail = _one_line(cause.message) or cause.cls_name
    for key, checks in failed_checks.items():
        outcome = outcomes.get(key)
        if outcome is None:
            continue
        blocking = [c for c in checks if not c.endswith("(warning)")]
        if blocking and outcome.status == "built":
            outcome.status = "failed"
        outcome.detail = f"check failed: {', '.join(checks)}; {outcome.detail}".rstrip("; ")
    for item in todo:
        upstream = outcomes.get(item.upstream or "")
        if outcomes[item.key].status == "not run" and upstream is not None and upstream.status in ("failed", "blocked"):
            outcomes[item.key].status = "blocked"
            outcomes[item.key].detail = f"{upstream.key} {upstream.status}"
    return outcomes


def _one_line(message: str | None) -> str:
    """The first line of an error message, without the exception class name Dagster adds."""
    first = (message or "").strip().splitlines()[0] if message and message.strip() else ""
    head, sep, rest = first.partition(": ")
    return rest if sep and "." in head and " " not in head else first


def _materialized(outcome: AssetOutcome, metadata: dict[str, Any], run_id: str) -> None:
    outcome.status = "built"
    outcome.dagster_run_id = run_id
    outcome.data_version = _value(metadata.get("data_version"))
    outcome.upstream_data_version = _value(metadata.get("upstream_data_version"))
    if "mlflow_run" in metadata:
        outcome.mlflow_run = _value(metadata["mlflow_run"])
        outcome.model_version = str(_value(metadata["model_version"]))
        alias = _value(metadata.get("alias"))
        outcome.alias = None if alias == "none" else alias
        outcome.detail = _value(metadata.get("promotion")) or ""
        outcome.metrics = {k.removeprefix("metric_"): _value(v) for k, v in metadata.items() if k.startswith("metric_")}
    else:
        outcome.detail = f"{_value(metadata.get('rows'))} rows"
