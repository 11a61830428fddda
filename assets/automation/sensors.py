"""Every sensor of the code location, in one place: what runs by itself, how often, and why.

============================  =========  =====================================================
sensor                        interval   what it does
============================  =========  =====================================================
``slipway_automation``        Dagster's  rebuilds what the rebuild predicate finds out of date
                                         (:mod:`assets.automation.rebuild`)
``slipway_retrain``           30 s       retrains models by their retrain policy: new data,
                                         drift, schedule (:mod:`assets.automation.retrain`)
``slipway_new_files``         30 s       sees new files of file sources, a stat each, no run
                                         (:mod:`assets.automation.new_files`)
``slipway_alias_pins``        60 s       keeps aliases where git pins them
                                         (:mod:`assets.model.pins`)
``slipway_run_failures``      on event   alerts on failed runs
                                         (:mod:`assets.automation.run_failures`)
============================  =========  =====================================================

All are on by default (deployed and in `slipway dev`): a merged change rebuilds what it touches
without anyone finding a toggle. Each sensor's decision is written in its concern's module;
what is here is only its declaration.
"""

from __future__ import annotations

import warnings

import dagster as dg

from resources.alerts import Alerter
from resources.artifacts import ArtifactStore
from resources.errors import count
from resources.policy import ImportPolicy
from resources.registry import ModelRegistry

AUTOMATION_SENSOR = "slipway_automation"
RETRAIN_SENSOR = "slipway_retrain"
NEW_FILES_SENSOR = "slipway_new_files"
PINS_SENSOR = "slipway_alias_pins"
RUN_FAILURE_SENSOR = "slipway_run_failures"
TICK_SECONDS = 30


def sensors() -> list[dg.SensorDefinition]:
    """The code location's sensors."""
    return [automation_sensor(), alias_pins_sensor(), retrain_sensor(), run_failure_sensor(), new_files_sensor()]


def automation_sensor() -> dg.SensorDefinition:
    """Dagster's automation sensor over every asset: it evaluates each asset's rebuild predicate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)  # use_user_code_server is beta
        return dg.AutomationConditionSensorDefinition(
            AUTOMATION_SENSOR,
            target=dg.AssetSelection.all(include_sources=True),
            # The predicate reads the stack's stores, so it is evaluated in the code server.
            use_user_code_server=True,
            description="Rebuilds what is out of date (slipway's rebuild predicate).",
            default_status=dg.DefaultSensorStatus.RUNNING,
        )


def retrain_sensor() -> dg.SensorDefinition:
    """The retrain policy's sensor (:func:`assets.automation.retrain.evaluate`)."""

    @dg.sensor(
        name=RETRAIN_SENSOR,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"io_manager", "model_registry", "experiment_tracker", "drift_detector", "alerter"},
        # Its run requests name the model (asset_selection): any asset of the code location may be one.
        target=dg.AssetSelection.all(),
        description="Retrains models by their retrain policy (new data, drift, schedule; cooldown, max_per_day).",
    )
    def _retrain(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        from assets.automation.retrain import evaluate
        from assets.model.sweep_asset import sweep_pools
        from resources.dagster_private import set_pool_limits

        # Each sweep's trials run as many at once as its parallelism says, in whatever launches them.
        if context.repository_def is not None:
            try:
                set_pool_limits(context.instance, sweep_pools(context.repository_def.assets_defs_by_key.values()))
            except Exception as exc:  # the instance's storage hiccupped: retrain decisions go on
                context.log.warning(f"sweep pools not set this tick: {exc}")
        return evaluate(context)

    return _retrain


def new_files_sensor() -> dg.SensorDefinition:
    """The new-files sensor: one stat per landed file per tick (:mod:`assets.automation.new_files`)."""

    @dg.sensor(
        name=NEW_FILES_SENSOR,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sees new files of file sources (a stat per file), served traffic and moved aliases at each "
        "tick; no run.",
    )
    def _new_files(
        context: dg.SensorEvaluationContext,
        import_policy: ImportPolicy,
        io_manager: ArtifactStore,
        model_registry: ModelRegistry,
    ) -> dg.SkipReason:
        from assets.automation.new_files import observe_new_files

        return observe_new_files(context, import_policy.data_roots, io_manager, model_registry)

    return _new_files


def alias_pins_sensor() -> dg.SensorDefinition:
    """The reconcile step of alias pins (:mod:`assets.model.pins`), once a minute.

    One registry read per tick (every registered model's aliases in one search); it moves an
    alias only where git pins it elsewhere, and records what it found on the model assets.
    """

    @dg.sensor(
        name=PINS_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps model aliases where git pins them (promote.pin); reports aliases moved by hand.",
    )
    def _pins(context: dg.SensorEvaluationContext, model_registry: ModelRegistry) -> dg.SensorResult | dg.SkipReason:
        from assets.model import pins

        graph = context.repository_def.asset_graph  # type: ignore[union-attr]
        models = pins.models_of(graph, graph.materializable_asset_keys)
        findings = pins.reconcile(model_registry, models)
        events = pins.evaluations(context.instance, findings, [m.asset for m in models])
        if not events and findings:
            said = f"{count(len(models), 'model')}: {count(len(findings), 'alias finding')}"
            return dg.SkipReason(f"{said}, unchanged since reported")
        if not events:
            return dg.SkipReason(f"{count(len(models), 'model')}: every alias is where git and Slipway put it")
        for finding in findings:
            context.log.info(finding.message)
        return dg.SensorResult(asset_events=events)

    return _pins


def run_failure_sensor() -> dg.SensorDefinition:
    """Alerts (the stack's alerter) on every failed run of the code location.

    A run launched by `slipway run` is left to it: the command alerts on its own failed runs,
    so a failure is alerted once whether the daemon runs or not.
    """

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
        description="Alerts on failed runs (the stack's alerter).",
    )
    def _failed(context: dg.RunFailureSensorContext, alerter: Alerter) -> None:
        from assets.automation.run_failures import refused_only, root_message, run_failure_alert

        run = context.dagster_run
        if run.tags.get("slipway/command") == "run" and "dagster/parent_run_id" not in run.tags:
            return
        errors = [
            e for step in context.get_step_failure_events() if (e := getattr(step.event_specific_data, "error", None))
        ]
        if refused_only(errors):
            return
        message = root_message(errors[0]) if errors else context.failure_event.message or ""
        alerter.send(run_failure_alert(run, message), context.log)

    return _failed
