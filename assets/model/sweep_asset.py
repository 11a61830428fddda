"""The asset of a model with a ``sweep:``: a graph of one step per trial, then the step that trains the winner.

Each trial is an op of its own (a step: a process of its own on the multiprocess executor, a pod
with the model's ``resources`` on the k8s one), in the pool ``slipway-sweep-<model>`` whose slots
are the sweep's ``parallelism`` (:func:`sweep_pools`). The last op (``train``) waits for them all,
reads their runs (:func:`assets.model.sweep.collect`), and trains, tracks, registers and promotes
the winner as the model's own op does, in the model's pool. The trials output nothing: the tracker
holds what they found, so no table passes between the steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from assets.data.failures import recording_failures
from assets.model import sweep
from assets.spec import compute
from assets.spec.sweep_spec import Trial, expand
from resources.alerts import Alerter
from resources.policy import ImportPolicy
from resources.registry import ModelRegistry
from resources.tracker import ExperimentTracker

if TYPE_CHECKING:
    from assets.model.model_asset import _ModelAsset

#: The run tag of every trial op: which sweep it belongs to.
SWEEP_OP_TAG = "slipway/sweep"
#: The asset metadata that carries a sweep's parallelism (its trial pool's slots).
PARALLELISM = "slipway/sweep_parallelism"


def trial_pool(registry_name: str) -> str:
    """The Dagster pool of a model's trials: its slots are the sweep's parallelism."""
    return f"slipway-sweep-{registry_name}"


def sweep_pools(assets: Any) -> dict[str, int]:
    """Each sweep's trial pool and its parallelism (among asset definitions ``assets``), for the pool limits."""
    found = {}
    for item in assets:
        for metadata in getattr(item, "metadata_by_key", {}).values():
            if PARALLELISM in metadata:
                found[trial_pool(metadata["slipway/registered_model"])] = int(metadata[PARALLELISM])
    return found


def build_sweep_asset(model: _ModelAsset, refs: Mapping[str, Any] | None) -> dg.AssetsDefinition:
    """The model's asset as a graph: a step per trial of its sweep, then the winner's training."""
    from assets.model.model_asset import _Stores, pool_name

    spec = model.spec
    assert spec.sweep is not None
    args = model.asset_args(refs)
    args["metadata"] = {**args["metadata"], PARALLELISM: spec.sweep.parallelism}
    has_evaluation = "evaluation" in args["ins"]
    tags = {**compute.op_tags(spec.resources), SWEEP_OP_TAG: model.registry_name}
    trials = [_trial_op(model, trial, tags, has_evaluation) for trial in expand(spec.sweep).trials]
    outs = {"result": dg.Out(is_required=False)} | {
        check.get_python_identifier(): dg.Out(dg.Nothing, is_required=False) for check in args["check_specs"]
    }
    # The ops load the dataset themselves: the model's window (an AssetIn's metadata) is theirs to say.
    ins = {"frame": dg.In(metadata=model.window), "evaluation": dg.In(), "trials": dg.In(dg.Nothing)}
    if not has_evaluation:
        del ins["evaluation"]

    @dg.op(
        name="train",
        ins=ins,
        out=outs,
        tags=compute.op_tags(spec.resources),
        pool=pool_name(model.pipeline, model.name),
        description="Choose the best trial, then train, register and promote it as the model's new version",
    )
    def train(
        context,  # noqa: ANN001  (Dagster reads the annotation; none is an op context)
        experiment_tracker: ExperimentTracker,
        model_registry: ModelRegistry,
        import_policy: ImportPolicy,
        alerter: Alerter,
        frame: Any,
        evaluation: Any = None,
    ) -> Any:
        def steps() -> Any:
            swept = sweep.collect(
                spec,
                model.pipeline,
                model.registry_name,
                frame,
                evaluation,
                experiment_tracker,
                dict(context.run.tags),
                context.run.run_id,
            )
            stores = _Stores(experiment_tracker, model_registry, import_policy, alerter)
            yield from model.train(context, frame, evaluation, stores, swept)

        yield from recording_failures(context, model.key, steps(), can_refuse=False)

    compose: Any
    if has_evaluation:

        def compose_with_evaluation(frame: Any, evaluation: Any) -> Any:
            return train(
                frame=frame, evaluation=evaluation, trials=[op(frame=frame, evaluation=evaluation) for op in trials]
            )

        compose = compose_with_evaluation
    else:

        def compose_alone(frame: Any) -> Any:
            return train(frame=frame, trials=[op(frame=frame) for op in trials])

        compose = compose_alone
    compose.__name__ = "__".join(model.key.path)
    return dg.graph_asset(**args)(compose)


def _trial_op(model: _ModelAsset, trial: Trial, tags: dict[str, Any], has_evaluation: bool) -> Any:
    step = sweep.TrialStep(model.pipeline, model.name, model.registry_name, model.spec, trial, model.where)
    ins = {"frame": dg.In(metadata=model.window), **({"evaluation": dg.In()} if has_evaluation else {})}

    @dg.op(
        name=f"trial_{trial.id}",
        ins=ins,
        out=dg.Out(dg.Nothing),
        tags=tags,
        pool=trial_pool(model.registry_name),
        description=f"Trial {trial.id} of the sweep: {trial.label}",
    )
    def run(
        context,  # noqa: ANN001  (Dagster reads the annotation; none is an op context)
        experiment_tracker: ExperimentTracker,
        import_policy: ImportPolicy,
        frame: Any,
        evaluation: Any = None,
    ) -> None:
        outcome = sweep.run_trial(step, context, frame, evaluation, experiment_tracker, import_policy.allowed)
        line = f"{model.label} trial {trial.id} ({trial.label}): {outcome}"
        (context.log.warning if outcome.startswith("failed") else context.log.info)(line)

    return run
