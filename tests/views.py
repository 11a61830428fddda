"""The code location as the UI and the automation sensor see it: materialize, observe, evaluate."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from definitions.definitions import build_definitions
from stacks import load_stack
from stacks.build import prepare_instance


def stack_instance() -> dg.DagsterInstance:
    """The active stack's Dagster instance (close it: use it in a ``with``)."""
    return dg.DagsterInstance.from_config(str(prepare_instance(load_stack().stack)))


def ui_materialize(defs_dir: Path, *keys: str) -> dg.ExecuteInProcessResult:
    """Materialize ``keys`` the way the UI does: the code location's job, on the stack's instance."""
    defs = build_definitions(defs_dir)
    job = defs.resolve_implicit_global_asset_job_def()
    with stack_instance() as instance:
        return job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey.from_user_string(k) for k in keys], raise_on_error=False
        )


def ui_observe(defs_dir: Path) -> None:
    """ "Observe sources" in the UI: run the observation of every observable source asset."""
    from dagster._core.definitions.observe import observe

    defs = build_definitions(defs_dir)
    graph = defs.resolve_asset_graph()
    sources = [graph.get(k).assets_def for k in graph.observable_asset_keys]
    with stack_instance() as instance:
        observe(sources, instance=instance)


def automation_requests(defs_dir: Path) -> set[str]:
    """What the automation sensor would request now."""
    defs = build_definitions(defs_dir)
    with stack_instance() as instance:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    keys = defs.resolve_asset_graph().materializable_asset_keys
    return {k.to_user_string() for k in keys if result.get_num_requested(k)}


def retrain_tick(defs_dir: Path, now: float | None = None):
    """One tick of the ``slipway_retrain`` sensor through Dagster, as the daemon runs it (``now``: its clock).

    Returns Dagster's evaluation data (``run_requests``, ``skip_message``).
    """
    from assets.automation import retrain
    from assets.automation.sensors import RETRAIN_SENSOR

    defs = build_definitions(defs_dir)
    sensor = defs.get_sensor_def(RETRAIN_SENSOR)
    clock = retrain.clock
    if now is not None:
        retrain.clock = lambda: now
    try:
        with stack_instance() as instance:
            context = dg.build_sensor_context(
                instance=instance, definitions=defs, resources=defs.resources, sensor_name=sensor.name
            )
            return sensor.evaluate_tick(context)
    finally:
        retrain.clock = clock


def launch(defs_dir: Path, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Launch a sensor's run request as the daemon does: its selection, its tags and its run key."""
    defs = build_definitions(defs_dir)
    job = defs.resolve_implicit_global_asset_job_def()
    tags = {**request.tags, "dagster/run_key": request.run_key}
    with stack_instance() as instance:
        return job.execute_in_process(
            instance=instance, asset_selection=list(request.asset_selection), tags=tags, raise_on_error=False
        )


def current_table(key: str):
    """The table of ``key`` that downstream assets read now: the version Dagster recorded (local stack)."""
    from resources.artifacts import LocalArtifactStore
    from stacks import slipway_home

    store = LocalArtifactStore(base_dir=str(slipway_home() / "artifacts"))
    with stack_instance() as instance:
        return store.read_recorded(instance, dg.AssetKey.from_user_string(key))


def automation_partitions(defs_dir: Path) -> dict[str, set[str | None]]:
    """The partitions the automation sensor would request now, by asset (unpartitioned: ``{None}``)."""
    defs = build_definitions(defs_dir)
    with stack_instance() as instance:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    keys = defs.resolve_asset_graph().materializable_asset_keys
    return {k.to_user_string(): set(result.get_requested_partitions(k)) for k in keys if result.get_num_requested(k)}
