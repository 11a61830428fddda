"""A trained model published: its run and files logged, its promotion decided, its version registered.

Under the model's promotion lock: settle what earlier trainings left, read the aliases, compare
with the champion, register the version with its decision in one call, then move the alias.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.data import progress
from assets.model import champion, promotion, recovery, training
from assets.spec.graph import key_of
from assets.spec.model_spec import Model
from resources.artifacts import ModelRef
from resources.registry import ModelRegistry
from resources.tracker import ExperimentTracker, TrackedRun


def track_and_promote(
    context: dg.AssetExecutionContext,
    spec: Model,
    trained: training.Trained,
    frame: Any,
    run: TrackedRun,
    described: tuple[dict[str, str], str],
    registry_name: str,
    data_version: str,
    keys: tuple[dg.AssetKey, dg.AssetKey],
    tracker: ExperimentTracker,
    registry: ModelRegistry,
) -> tuple[ModelRef, promotion.Decision, list[promotion.GateResult], champion.Comparison | None, str | None]:
    """Log the run and the model, decide its promotion, then register the version with the decision.

    Returns the version's reference, its decision, gates and comparison, and the version that
    holds the promotion alias once it is decided (None: no version does).

    The version is registered with its decision in one call, then the alias moves: a crash
    leaves no version, or a decided one (which the next training of the model settles,
    :mod:`assets.model.recovery`, if Dagster never recorded it).
    """
    key, dataset_key = keys
    tags, notes = described
    tracker.log(run, trained.params, trained.metrics, {})
    x_train = trained.holdout.x_train
    tracker.log_dataset(
        run,
        name=dataset_key.to_user_string(),
        digest=data_version,
        source=dataset_key.to_user_string(),
        schema={str(c): str(t) for c, t in x_train.dtypes.items()},
    )
    if spec.evaluate_on:
        name = key_of(key.path[0], spec.evaluate_on)  # as the model asset's evaluation input
        tracker.log_dataset(
            run,
            name=name,
            digest=tags[f"slipway.upstream.{name}"],
            source=name,
            schema={str(c): str(t) for c, t in trained.holdout.x_test.dtypes.items()},
            context="evaluation",
        )
    example = x_train.head(5)
    uri = tracker.log_model(run, trained.model, example, trained.model.predict(example))
    if isinstance(trained.holdout.record, training.EvaluationRecord):
        # What it trained on, for the comparison of a later version with it (champion.compare).
        rows = training.row_hashes(
            trained.holdout.x_train.assign(**{spec.target: trained.holdout.y_train}), trained.holdout.record.columns
        )
        tracker.log_file(run, training.TRAINING_ROWS_FILE, rows.tobytes())
    gates = promotion.evaluate_gates(spec.promote, trained.metrics)
    metric = promotion.primary_metric(spec.promote, spec.metrics)
    passed = all(g.passed for g in gates)
    # Settle, read, compare, register and move under the model's lock: a promotion decided at
    # the same time elsewhere is either finished before this reads the aliases, or waits.
    with registry.promotion_lock(registry_name):
        for line in recovery.settle(context.instance, tracker, registry, key, key.path[0], registry_name):
            context.log.warning(line)
            progress.finished(key.to_user_string(), line)
        aliases = registry.aliases(registry_name)

        def judge(holder: str | None) -> tuple[promotion.Decision, champion.Comparison | None]:
            comparison = champion.with_champion(registry, registry_name, holder, metric, trained, frame, spec.target)
            return promotion.decide(spec.promote, gates, metric, trained.metrics[metric], comparison), comparison

        decision, comparison = judge(aliases.get(spec.promote.must_beat) if spec.promote.must_beat else None)
        decided = {
            **tags,
            **promotion.decision_tags(decision, comparison, aliases),
            "slipway.gates_passed": str(passed).lower(),
        }
        version = registry.register(
            registry_name, uri, run.run_id, decided, takes_turn=decision.alias is not None, description=notes
        )
        for twin in registry.versions_of_run(registry_name, run.run_id):
            # A registration retried after a timeout may have been made twice; only one is this run's.
            if twin != version:
                recovery.abandon(registry, registry_name, twin, f"a second registration of v{version}'s run")
        held = dict(aliases)  # the aliases as they are once this version is decided
        if decision.alias:
            decided_then = (decision, comparison)
            decision, comparison, held = promotion.move_alias(
                registry, registry_name, version, spec.promote, decided_then, aliases, judge, context.log.warning
            )
        if comparison is not None and comparison.problem:
            context.log.warning(f"{registry_name}: {decision.reason}")
    ref = ModelRef(registry_name, version, uri, run.run_id, decision.alias, trained.metrics, gates_passed=passed)
    return ref, decision, gates, comparison, held.get(spec.promote.alias)
