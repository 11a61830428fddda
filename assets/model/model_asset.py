"""The Dagster asset for one declared model: train, track, register, gate and promote."""

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from assets.data import progress
from assets.data.failures import recording_failures
from assets.data.outputs import versioned_output
from assets.model import champion, model_report, pins, publish, recovery, training
from assets.model import checks as model_checks
from assets.model.pins import ALIAS_CHECK, CHAMPION_CHECK, PROMOTE_METADATA
from assets.spec import compute
from assets.spec.graph import REFS_METADATA, model_edges
from assets.spec.lineage import git_state, lock_hash, slipway_version
from assets.spec.policy import policy_metadata
from assets.spec.schema import Model
from assets.spec.tags import REASON_TAG, TRIGGER_TAG
from assets.spec.versions import code_files, code_version, frame_version
from resources.alerts import Alerter
from resources.errors import SlipwayError
from resources.policy import ImportPolicy
from resources.redact import redact
from resources.registry import ModelRegistry
from resources.tracker import ExperimentTracker, TrackedRun


def gate_check_name(metric: str) -> str:
    """The asset check's name for the gate on ``metric``."""
    return f"gate_{metric}"


def registered_name(pipeline: str, model: str) -> str:
    """The model's name in the registry."""
    return f"{pipeline}.{model}"


def pool_name(pipeline: str, model: str) -> str:
    """The Dagster concurrency pool of a model: one training per registered model at a time."""
    return f"slipway-model-{registered_name(pipeline, model)}"


def build_model_asset(
    pipeline: str,
    name: str,
    spec: Model,
    folder: Path,
    upstream_code: tuple[Path, ...] = (),
    refs: Mapping[str, Any] | None = None,
) -> dg.AssetsDefinition:
    """One asset ``pipeline/name`` trained on ``pipeline/<spec.dataset>`` (scored on ``evaluate_on`` if set).

    ``upstream_code`` are the project files the dataset runs (its transform or generator):
    untracked, they make the recorded commit dirty too. ``refs`` are its references to other
    pipelines' assets (:func:`assets.spec.graph.refs_metadata`), checked by the code location.
    """
    key = dg.AssetKey([pipeline, name])
    # Its inputs as the graph declares them: the dataset it trains on, then an evaluation set.
    edges = {edge.field[0]: dg.AssetKey(edge.target.split("/")) for edge in model_edges(pipeline, spec)}
    dataset_key, evaluation_key = edges["dataset"], edges.get("evaluate_on")
    ins = {"frame": dg.AssetIn(key=dataset_key)}
    if evaluation_key is not None:
        ins["evaluation"] = dg.AssetIn(key=evaluation_key)
    where = f"pipeline {pipeline}, model {name}"
    version_hash = code_version("model", spec)
    checks = [
        dg.AssetCheckSpec(gate_check_name(m), asset=key, blocking=True, description=f"{m} {cond}")
        for m, cond in spec.promote.gates.items()
    ]
    checks.append(
        dg.AssetCheckSpec(
            ALIAS_CHECK,
            asset=key,
            description="The registry's aliases are where git pins them and Slipway last set them (none moved by hand)",
        )
    )
    checks.append(
        dg.AssetCheckSpec(
            CHAMPION_CHECK,
            asset=key,
            description=f"The version that holds {spec.promote.alias} (the one served) can be loaded",
        )
    )

    def _train(
        context: dg.AssetExecutionContext,
        frame: Any,
        evaluation: Any,
        experiment_tracker: ExperimentTracker,
        model_registry: ModelRegistry,
        import_policy: ImportPolicy,
        alerter: Alerter,
    ) -> Any:
        progress.started(f"{pipeline}/{name}", "training")
        # Import everything the training needs first: the tracker's warm-up imports MLflow on
        # another thread, and no import may run beside it.
        fit_fn = training.learner(spec, import_policy.allowed, where)
        experiment_tracker.prepare()
        # The run is recorded after training (so that MLflow's start-up overlaps it), dated
        # from when training began.
        train_started_ms = int(time.time() * 1000)
        trained = training.train(frame, spec, fit_fn, where, evaluation)
        sha, dirty = git_state(folder, [*code_files(spec), *upstream_code])
        data_version = frame_version(frame)
        tags = {
            "slipway.git_sha": sha,
            "slipway.git_dirty": str(dirty).lower(),
            "slipway.definition_hash": version_hash,
            "slipway.dagster_run_id": context.run.run_id,
            "slipway.asset_key": key.to_user_string(),
            "slipway.pipeline": pipeline,
            "slipway.version": slipway_version(),
            "slipway.lock_hash": lock_hash(),
            champion.SPLIT_TAG: trained.holdout.record.to_json(),
            f"slipway.upstream.{dataset_key.to_user_string()}": data_version,
            **(
                {f"slipway.upstream.{evaluation_key.to_user_string()}": frame_version(evaluation)}
                if evaluation_key
                else {}
            ),
            # MLflow's own tags, shown as the run's source in its UI.
            "mlflow.source.type": "JOB",
            "mlflow.source.name": str(folder / "defs.yaml"),
        }
        if sha != "unknown":
            tags["mlflow.source.git.commit"] = sha
        # Why this training happened, when a retrain policy launched it (assets.automation.retrain).
        trigger = context.run.tags.get(TRIGGER_TAG)
        if trigger:
            tags["slipway.retrain_trigger"] = trigger
            tags["slipway.retrain_reason"] = context.run.tags.get(REASON_TAG, "")[:500]
        registry_name = registered_name(pipeline, name)
        # Shown by MLflow's UI on the run's and the version's pages, with links back to Dagster.
        reason = tags.get("slipway.retrain_reason", "")
        notes = model_report.notes(context.run.run_id, key.to_user_string(), trigger, reason)
        run_tags = {**tags, model_report.NOTE_TAG: notes}
        run = experiment_tracker.start_run(pipeline, f"{name}-{context.run.run_id[:8]}", run_tags, train_started_ms)
        yielded = False
        try:
            ref, decision, gates, comparison, serving = publish.track_and_promote(
                context,
                spec,
                trained,
                frame if evaluation is None else evaluation,
                run,
                (tags, notes),
                registry_name,
                data_version,
                (key, dataset_key),
                experiment_tracker,
                model_registry,
            )
            context.log.info(f"{registry_name} v{ref.version}: {decision.reason}")
            progress.finished(f"{pipeline}/{name}", f"v{ref.version} {ref.alias or 'no alias'}: {decision.reason}")
            output = versioned_output(
                ref,
                f"{registry_name}@{ref.version}",
                {
                    "mlflow_run": dg.MetadataValue.url(experiment_tracker.run_url(run)),
                    "mlflow_run_id": run.run_id,
                    "model_uri": ref.uri,
                    "registered_model": registry_name,
                    "model_version": dg.MetadataValue.int(int(ref.version)),
                    "alias": ref.alias or "none",
                    # The version that serves (the promotion alias), linked: a challenger's page
                    # says which version it did not replace.
                    **model_report.champion_metadata(registry_name, serving, experiment_tracker),
                    "promotion": decision.reason,
                    "upstream_data_version": data_version,
                    "git_sha": sha,
                    "git_dirty": dirty,
                    **(
                        {"retrain_trigger": trigger, "retrain_reason": tags["slipway.retrain_reason"]}
                        if trigger
                        else {}
                    ),
                    **{f"metric_{k}": dg.MetadataValue.float(v) for k, v in trained.metrics.items()},
                },
            )
            # Once the output is handed over, only Dagster's record can say whether the version
            # was delivered: an interrupt may land while Dagster stores it, after the
            # materialization is written, and this generator is then never resumed (only
            # closed, whenever it is collected). So a failure from here on is settled by
            # assets.model.recovery.settle, which reads the event log (`slipway run` calls it as soon
            # as its run ends), never by this frame.
            yielded = True
            yield output
        except BaseException as exc:
            if not yielded:
                _give_up(context, experiment_tracker, model_registry, run, registry_name, exc)
            raise
        model_report.alert(
            alerter,
            context.log,
            context.run.run_id,
            key.to_user_string(),
            registry_name,
            ref,
            (decision, serving),
            gates,
            experiment_tracker.run_url(run),
            spec.promote.alias,
        )
        for gate in gates:
            yield dg.AssetCheckResult(
                check_name=gate_check_name(gate.metric),
                passed=gate.passed,
                metadata={"value": gate.value, "condition": gate.condition},
            )
        yield model_checks.alias_check(context, model_registry, key, registry_name, spec, ref.version)
        model = pins.Pinned(key.to_user_string(), registry_name, spec.promote)
        promoted = (ref.version, serving, comparison)
        link = experiment_tracker.run_url(run)
        yield model_checks.champion_check(context, model_registry, alerter, model, promoted, link)
        try:
            experiment_tracker.end_run(run, ok=True)
        except SlipwayError as exc:  # the model is delivered; the next `slipway run` closes its run
            context.log.warning(f"{registry_name}: {exc}; the next run closes it")
            recovery.keep_unsettled(context.instance, [*recovery.unsettled(context.instance), key.to_user_string()])

    @dg.asset(
        key=key,
        group_name=pipeline,
        code_version=version_hash,
        ins=ins,
        description=spec.description or f"Model {name} of pipeline {pipeline} ({spec.estimator or spec.train})",
        check_specs=checks,
        kinds={"mlflow", (spec.estimator or "python").split(".")[0].split(":")[0]},
        op_tags=compute.op_tags(spec.resources),
        pool=pool_name(pipeline, name),
        metadata={
            "slipway/pipeline": pipeline,
            "slipway/registered_model": registered_name(pipeline, name),
            PROMOTE_METADATA: spec.promote.model_dump_json(),
            **policy_metadata(pipeline, name, spec),
            **({REFS_METADATA: dict(refs)} if refs else {}),
        },
    )
    def _model(
        context: dg.AssetExecutionContext,
        experiment_tracker: ExperimentTracker,
        model_registry: ModelRegistry,
        import_policy: ImportPolicy,
        alerter: Alerter,
        **frames: Any,
    ) -> Any:
        steps = _train(
            context,
            frames["frame"],
            frames.get("evaluation"),
            experiment_tracker,
            model_registry,
            import_policy,
            alerter,
        )
        # A model refuses no data (only a dataset's blocking expectations do): nothing to record.
        yield from recording_failures(context, key, steps, can_refuse=False)

    return _model


def _give_up(
    context: dg.AssetExecutionContext,
    tracker: ExperimentTracker,
    registry: ModelRegistry,
    run: TrackedRun,
    registry_name: str,
    exc: BaseException,
) -> None:
    """A training failed before Dagster recorded it: abandon what it registered and fail its run.

    When the stores cannot be reached now, the next training of the model (or `slipway run`)
    settles both; the original error is what the step reports either way.
    """
    if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
        what = "interrupted"
    else:
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    reason = redact(f"its training in Dagster run {context.run.run_id[:8]} failed before Dagster recorded it ({what})")
    try:
        # The promotion lock was released when the exception left its block; aliases move under it.
        with registry.promotion_lock(registry_name):
            recovery.give_up(tracker, registry, run, registry_name, reason)
    except Exception as cleanup:
        context.log.warning(
            redact(
                f"{registry_name}: the failed training could not be settled now ({cleanup}); "
                "the next training of this model settles it"
            )
        )
