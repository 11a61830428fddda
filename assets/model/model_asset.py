"""The Dagster asset for one declared model: train, track, register, gate and promote."""

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from assets.data import progress
from assets.data.failures import recording_failures
from assets.data.outputs import versioned_output
from assets.model import champion, model_report, pins, publish, recovery, sweep, training
from assets.model import checks as model_checks
from assets.model.pins import ALIAS_CHECK, CHAMPION_CHECK, PROMOTE_METADATA
from assets.spec import compute
from assets.spec.graph import REFS_METADATA, model_edges
from assets.spec.lineage import git_state, lock_hash, slipway_version
from assets.spec.model_spec import Model
from assets.spec.policy import policy_metadata
from assets.spec.tags import REASON_TAG, SERVE_METADATA, TRIGGER_TAG
from assets.spec.versions import code_files, code_version, frame_version
from resources.alerts import Alerter
from resources.errors import SlipwayError
from resources.partitioned import PARTITIONS_READ, WINDOW_METADATA
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
    model = _ModelAsset(pipeline, name, spec, folder, upstream_code)
    if spec.sweep is not None:
        from assets.model.sweep_asset import build_sweep_asset

        return build_sweep_asset(model, refs)

    @dg.asset(**model.asset_args(refs), op_tags=compute.op_tags(spec.resources), pool=pool_name(pipeline, name))
    def _model(
        context: dg.AssetExecutionContext,
        experiment_tracker: ExperimentTracker,
        model_registry: ModelRegistry,
        import_policy: ImportPolicy,
        alerter: Alerter,
        **frames: Any,
    ) -> Any:
        stores = _Stores(experiment_tracker, model_registry, import_policy, alerter)
        steps = model.train(context, frames["frame"], frames.get("evaluation"), stores)
        # A model refuses no data (only a dataset's blocking expectations do): nothing to record.
        yield from recording_failures(context, model.key, steps, can_refuse=False)

    return _model


@dataclass(frozen=True)
class _Stores:
    """The resources a training uses."""

    tracker: ExperimentTracker
    registry: ModelRegistry
    imports: ImportPolicy
    alerter: Alerter


class _ModelAsset:
    """What one declared model's asset does, step by step: train, track, publish, then its checks."""

    def __init__(self, pipeline: str, name: str, spec: Model, folder: Path, upstream_code: tuple[Path, ...]) -> None:
        self.pipeline, self.name, self.spec, self.folder, self.upstream_code = (
            pipeline,
            name,
            spec,
            folder,
            upstream_code,
        )
        self.key = dg.AssetKey([pipeline, name])
        # Its inputs as the graph declares them: the dataset it trains on, then an evaluation set.
        edges = {edge.field[0]: dg.AssetKey(edge.target.split("/")) for edge in model_edges(pipeline, spec)}
        self.dataset_key, self.evaluation_key = edges["dataset"], edges.get("evaluate_on")
        self.where = f"pipeline {pipeline}, model {name}"
        self.version_hash = code_version("model", spec)
        self.registry_name = registered_name(pipeline, name)
        self.label = self.key.to_user_string()

    @property
    def window(self) -> dict[str, int] | None:
        """The metadata of its dataset input that says how many partitions it reads (None: all)."""
        return {WINDOW_METADATA: self.spec.window} if self.spec.window is not None else None

    def asset_args(self, refs: Mapping[str, Any] | None) -> dict[str, Any]:
        """What Dagster is told of the asset, whether one op trains it or a sweep's graph does."""
        spec, pipeline, name = self.spec, self.pipeline, self.name
        ins = {"frame": dg.AssetIn(key=self.dataset_key, metadata=self.window)}
        if self.evaluation_key is not None:
            ins["evaluation"] = dg.AssetIn(key=self.evaluation_key)
        return {
            "key": self.key,
            "group_name": pipeline,
            "code_version": self.version_hash,
            "ins": ins,
            "description": spec.description or f"Model {name} of pipeline {pipeline} ({spec.estimator or spec.train})",
            "check_specs": self.check_specs(),
            "kinds": {"mlflow", (spec.estimator or "python").split(".")[0].split(":")[0]},
            "metadata": {
                "slipway/pipeline": pipeline,
                "slipway/registered_model": self.registry_name,
                PROMOTE_METADATA: spec.promote.model_dump_json(),
                **policy_metadata(pipeline, name, spec),
                **({SERVE_METADATA: spec.serve.model_dump_json()} if spec.serve else {}),
                **({REFS_METADATA: dict(refs)} if refs else {}),
            },
        }

    def check_specs(self) -> list[dg.AssetCheckSpec]:
        """Its gates (blocking), the alias check and the champion check."""
        checks = [
            dg.AssetCheckSpec(gate_check_name(m), asset=self.key, blocking=True, description=f"{m} {cond}")
            for m, cond in self.spec.promote.gates.items()
        ]
        checks.append(
            dg.AssetCheckSpec(
                ALIAS_CHECK,
                asset=self.key,
                description="The registry's aliases are where git pins them and Slipway last set them "
                "(none moved by hand)",
            )
        )
        checks.append(
            dg.AssetCheckSpec(
                CHAMPION_CHECK,
                asset=self.key,
                description=f"The version that holds {self.spec.promote.alias} (the one served) can be loaded",
            )
        )
        return checks

    def run_tags(
        self,
        context: dg.AssetExecutionContext,
        data_version: str,
        evaluation: Any,
        git: tuple[str, bool],
        partitions: list[dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        """The MLflow run's tags: where it came from (git, definition, Dagster run, data) and why it trained."""
        sha, dirty = git
        tags = {
            "slipway.git_sha": sha,
            "slipway.git_dirty": str(dirty).lower(),
            "slipway.definition_hash": self.version_hash,
            "slipway.dagster_run_id": context.run.run_id,
            "slipway.asset_key": self.label,
            "slipway.pipeline": self.pipeline,
            "slipway.version": slipway_version(),
            "slipway.lock_hash": lock_hash(),
            f"slipway.upstream.{self.dataset_key.to_user_string()}": data_version,
            # MLflow's own tags, shown as the run's source in its UI.
            "mlflow.source.type": "JOB",
            "mlflow.source.name": str(self.folder / "defs.yaml"),
        }
        if self.evaluation_key is not None:
            tags[f"slipway.upstream.{self.evaluation_key.to_user_string()}"] = frame_version(evaluation)
        if partitions:  # which partitions: how many and the first and last here, each one in partitions.json
            keys = [p["partition"] for p in partitions]
            span = keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]}"
            tags[f"slipway.partitions.{self.dataset_key.to_user_string()}"] = f"{len(keys)} ({span})"
        if sha != "unknown":
            tags["mlflow.source.git.commit"] = sha
        # Why this training happened, when a retrain policy launched it (assets.automation.retrain).
        trigger = context.run.tags.get(TRIGGER_TAG)
        if trigger:
            tags["slipway.retrain_trigger"] = trigger
            tags["slipway.retrain_reason"] = context.run.tags.get(REASON_TAG, "")[:500]
        return tags

    def train(
        self, context: Any, frame: Any, evaluation: Any, stores: _Stores, swept: sweep.SweepResult | None = None
    ) -> Any:
        """Train (a sweep's winner when ``swept``), track and publish (the output), then alert and yield the checks."""
        progress.started(self.label, "training")
        spec = self.spec if swept is None else self.spec.trial(swept.params)
        # Import everything the training needs first: the tracker's warm-up imports MLflow on
        # another thread, and no import may run beside it.
        fit_fn = training.learner(spec, stores.imports.allowed, self.where)
        fitted = sweep.take(swept.winner.run) if swept is not None and swept.winner is not None else None
        if fitted is not None:  # the winning trial's model, fitted in this process on the same rows
            fit_fn = lambda x, y: fitted  # noqa: E731
        stores.tracker.prepare()
        # The run is recorded after training (so that MLflow's start-up overlaps it), dated
        # from when training began.
        train_started_ms = int(time.time() * 1000)
        trained = training.train(frame, spec, fit_fn, self.where, evaluation)
        git = git_state(self.folder, [*code_files(self.spec), *self.upstream_code])
        data_version = frame_version(frame)
        # The partitions of a partitioned dataset it read (the store names them): recorded with the run.
        partitions = list(getattr(frame, "attrs", {}).get(PARTITIONS_READ) or [])
        tags = self.run_tags(context, data_version, evaluation, git, partitions)
        tags[champion.SPLIT_TAG] = trained.holdout.record.to_json()
        if swept is not None:
            tags.update(sweep.tags_of(swept, self.registry_name))
        # Shown by MLflow's UI on the run's and the version's pages, with links back to Dagster.
        trigger = tags.get("slipway.retrain_trigger")
        notes = model_report.notes(context.run.run_id, self.label, trigger, tags.get("slipway.retrain_reason", ""))
        run_tags = {**tags, model_report.NOTE_TAG: notes}
        run = stores.tracker.start_run(
            self.pipeline, f"{self.name}-{context.run.run_id[:8]}", run_tags, train_started_ms
        )
        yielded = False
        try:
            if partitions:
                body = json.dumps({"dataset": self.dataset_key.to_user_string(), "partitions": partitions}, indent=1)
                stores.tracker.log_file(run, "partitions.json", body.encode())
            swept_metadata = self.record_sweep(context, stores.tracker, run, swept) if swept is not None else {}
            ref, decision, gates, comparison, serving = publish.track_and_promote(
                context,
                spec,
                trained,
                frame if evaluation is None else evaluation,
                run,
                (tags, notes),
                self.registry_name,
                data_version,
                (self.key, self.dataset_key),
                stores.tracker,
                stores.registry,
            )
            context.log.info(f"{self.registry_name} v{ref.version}: {decision.reason}")
            progress.finished(self.label, f"v{ref.version} {ref.alias or 'no alias'}: {decision.reason}")
            metadata = {
                "mlflow_run": dg.MetadataValue.url(stores.tracker.run_url(run)),
                "mlflow_run_id": run.run_id,
                "model_uri": ref.uri,
                "registered_model": self.registry_name,
                "model_version": dg.MetadataValue.int(int(ref.version)),
                "alias": ref.alias or "none",
                # The version that serves (the promotion alias), linked: a challenger's page
                # says which version it did not replace.
                **model_report.champion_metadata(self.registry_name, serving, stores.tracker),
                "promotion": decision.reason,
                "upstream_data_version": data_version,
                **(
                    {
                        "partitions_read": tags[f"slipway.partitions.{self.dataset_key.to_user_string()}"],
                        PARTITIONS_READ: dg.MetadataValue.json(partitions),
                    }
                    if partitions
                    else {}
                ),
                "git_sha": git[0],
                "git_dirty": git[1],
                **({"retrain_trigger": trigger, "retrain_reason": tags["slipway.retrain_reason"]} if trigger else {}),
                **{f"metric_{k}": dg.MetadataValue.float(v) for k, v in trained.metrics.items()},
                **swept_metadata,
            }
            output = versioned_output(ref, f"{self.registry_name}@{ref.version}", metadata)
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
                _give_up(context, stores.tracker, stores.registry, run, self.registry_name, exc)
            raise
        yield from self.after_publish(context, stores, run, ref, (decision, serving, comparison), gates)

    def record_sweep(
        self, context: Any, tracker: ExperimentTracker, run: TrackedRun, swept: sweep.SweepResult
    ) -> dict[str, Any]:
        """Nest the trials this run trained under its MLflow run, store the sweep's table and plot; its metadata."""
        params = dg.MetadataValue.json(swept.params)
        if swept.winner is None:
            return {"sweep": swept.note or "", "sweep_params": params}
        # The trials no sweep's run holds yet: this run's, and those of a sweep that failed after them.
        tracker.set_parent(
            run, [r.run.run.run_id for r in swept.results if r.run and sweep.PARENT_TAG not in r.run.tags]
        )
        tracker.log_file(run, "sweep/trials.json", json.dumps(sweep.report(swept), indent=1).encode())
        tracker.log_file(run, sweep.PLOT_FILE, sweep.score_plot(swept).encode())
        context.log.info(f"{self.registry_name} sweep: {swept.counts}; the winner {swept.winner.trial.label}")
        return {
            "sweep": swept.counts + (f" ({swept.note})" if swept.note else ""),
            "sweep_trials": dg.MetadataValue.int(len(swept.results)),
            "sweep_params": params,
            f"sweep_winner_{swept.metric}": dg.MetadataValue.float(float(swept.winner.score or 0.0)),
            "sweep_parent_run": dg.MetadataValue.url(tracker.run_url(run)),
            "sweep_plot": dg.MetadataValue.url(tracker.artifact_url(run, sweep.PLOT_FILE)),
            "sweep_scores": dg.MetadataValue.md(sweep.score_table(swept)),
        }

    def after_publish(
        self,
        context: dg.AssetExecutionContext,
        stores: _Stores,
        run: TrackedRun,
        ref: Any,
        promotion: tuple[Any, Any, Any],
        gates: list[Any],
    ) -> Any:
        """Alert, yield the gate, alias and champion checks, and close the MLflow run."""
        decision, serving, comparison = promotion
        link = stores.tracker.run_url(run)
        model_report.alert(
            stores.alerter,
            context.log,
            context.run.run_id,
            self.label,
            self.registry_name,
            ref,
            (decision, serving),
            gates,
            link,
            self.spec.promote.alias,
        )
        for gate in gates:
            yield dg.AssetCheckResult(
                check_name=gate_check_name(gate.metric),
                passed=gate.passed,
                metadata={"value": gate.value, "condition": gate.condition},
            )
        yield model_checks.alias_check(context, stores.registry, self.key, self.registry_name, self.spec, ref.version)
        model = pins.Pinned(self.label, self.registry_name, self.spec.promote)
        promoted = (ref.version, serving, comparison)
        yield model_checks.champion_check(context, stores.registry, stores.alerter, model, promoted, link)
        try:
            stores.tracker.end_run(run, ok=True)
        except SlipwayError as exc:  # the model is delivered; the next `slipway run` closes its run
            context.log.warning(f"{self.registry_name}: {exc}; the next run closes it")
            recovery.keep_unsettled(context.instance, [*recovery.unsettled(context.instance), self.label])


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
