"""Every private Dagster API Slipway relies on, fenced in one module.

Dagster keeps these out of its public API, so a minor release may move or change them.
``tests/resources/test_dagster_private.py`` is the canary: it exercises each one against the
installed Dagster and fails loudly, naming it, when an upgrade breaks it. Code elsewhere calls
these functions, never ``dagster._…`` itself (``stacks/dagster_storage.py`` and
``stacks/dagster_logs.py`` subclass private storage classes; their own tests hold them).

- :func:`reconstructable_job`: a job step processes can import (``ReconstructableRepository``);
- :func:`cursor_values` / :func:`set_cursor_values`: the instance's key-value store
  (``run_storage.get_cursor_values``), where Slipway keeps what the event log cannot hold;
- :func:`asset_graph_view`: the view an automation condition's evaluation shares
  (``AutomationContext.asset_graph_view``), to read the record once per evaluation;
- :func:`evaluation_of`: an asset's condition tree as one evaluation decided it (the result's
  ``results``, each an ``AutomationResult`` with ``condition``, ``true_subset``, ``child_results``),
  and, to read it, :func:`held`, :func:`label`, :func:`parts`, :func:`entity` and
  :func:`evaluation_metadata`;
- :func:`failed_checks`: the latest execution of asset checks (``event_log_storage``);
- :func:`check_evaluation`: a check's result as the evaluation of one partition, naming the
  materialization it checked (``AssetCheckEvaluationTargetMaterializationData``), for a run that
  builds several partitions (:mod:`assets.data.batches`);
- :func:`pool_holders` / :func:`free_pool_slots`: concurrency pool slots (``event_log_storage``);
- :func:`wrap_step_handler` / :func:`unhealthy_step`: the step handler of a step-delegating
  executor (``StepDelegatingExecutor._step_handler``) and the result its health check returns
  (``CheckStepHealthResult``), to watch dagster-k8s's step pods start (``stacks/k8s_steps.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def reconstructable_job(module: str, attribute: str, job_name: str) -> Any:
    """Job ``job_name`` of the code location ``module:attribute``, as step processes reload it."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module(module, attribute).get_reconstructable_job(job_name)


def cursor_values(instance: Any, names: Iterable[str]) -> dict[str, str]:
    """The stored values of ``names`` in the instance's key-value store (absent names are left out)."""
    names = set(names)
    return dict(instance.run_storage.get_cursor_values(names)) if names else {}


def set_cursor_values(instance: Any, values: Mapping[str, str]) -> None:
    """Store ``values`` in the instance's key-value store."""
    instance.run_storage.set_cursor_values(dict(values))


def asset_graph_view(context: Any) -> Any:
    """The asset graph view an automation evaluation shares across every asset's condition."""
    return context.asset_graph_view


def evaluation_of(result: Any, key: Any) -> Any:
    """The evaluation of ``key``'s condition in ``result`` (of ``dg.evaluate_automation_conditions``), or None."""
    return next((r for r in result.results if r.key == key), None)


def held(evaluation: Any) -> bool:
    """True when an evaluated condition was true for nothing (its ``true_subset`` is empty)."""
    return evaluation.true_subset.is_empty


def label(evaluation: Any) -> str | None:
    """The label of an evaluated condition (``with_label``), or None."""
    return evaluation.condition.get_label()


def parts(evaluation: Any) -> list[Any]:
    """The evaluations of an evaluated condition's operands (an AND's parts, a dependency match's entities)."""
    return list(evaluation.child_results)


def entity(evaluation: Any) -> Any:
    """The asset or check key an ``any_deps_match`` / ``all_deps_match`` / checks-match entry is about, or None."""
    from dagster._core.definitions.declarative_automation.operators.dep_operators import EntityMatchesCondition

    return evaluation.condition.key if isinstance(evaluation.condition, EntityMatchesCondition) else None


def evaluation_metadata(evaluation: Any) -> dict[str, Any]:
    """The metadata an evaluated condition returned (what the UI shows beside it)."""
    return dict(evaluation.serializable_evaluation.metadata or {})


def failed_checks(instance: Any, check_keys: Iterable[Any]) -> list[Any]:
    """Those of ``check_keys`` whose latest execution failed (FAILED; PLANNED never ran: its run died first)."""
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(check_keys))
    return [key for key, record in records.items() if record.status.value == "FAILED"]


def check_evaluation(key: Any, result: Any, partition: str, blocking: bool, target: Any) -> Any:
    """``result`` (an ``AssetCheckResult``) as the evaluation of ``partition`` of ``key``, checking ``target``.

    ``target`` is the partition's materialization record the check is about (None: never built).
    """
    import dagster as dg
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    data = None
    if target is not None:
        data = AssetCheckEvaluationTargetMaterializationData(
            storage_id=target.storage_id, run_id=target.run_id, timestamp=target.timestamp
        )
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=result.check_name,
        passed=result.passed,
        metadata=result.metadata,
        target_materialization_data=data,
        severity=result.severity,
        description=result.description,
        blocking=blocking,
        partition=partition,
    )


def pool_holders(instance: Any, prefix: str) -> set[str]:
    """The run ids holding a slot of a concurrency pool whose name starts with ``prefix``."""
    storage = instance.event_log_storage
    return {
        slot.run_id
        for key in storage.get_concurrency_keys()
        if key.startswith(prefix)
        for slot in storage.get_concurrency_info(key).claimed_slots
    }


def set_pool_limits(instance: Any, limits: dict[str, int]) -> None:
    """Give each concurrency pool of ``limits`` that many slots (as ``dagster instance concurrency set`` does)."""
    storage = instance.event_log_storage
    for pool, slots in limits.items():
        if storage.get_concurrency_info(pool).slot_count != slots:
            storage.set_concurrency_slots(pool, slots)


def free_pool_slots(instance: Any, run_id: str) -> None:
    """Free every concurrency pool slot run ``run_id`` holds."""
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def wrap_step_handler(executor: Any, wrap: Any) -> Any:
    """Replace the step handler of ``executor`` (a ``StepDelegatingExecutor``) by ``wrap(handler)``."""
    from dagster._core.executor.step_delegating import StepDelegatingExecutor

    if not isinstance(executor, StepDelegatingExecutor):
        raise TypeError(f"{type(executor).__name__} does not delegate its steps to a step handler")
    executor._step_handler = wrap(executor._step_handler)
    return executor


def unhealthy_step(reason: str) -> Any:
    """What a step handler's health check returns for a step that will not finish: ``reason``."""
    from dagster._core.executor.step_delegating.step_handler.base import CheckStepHealthResult

    return CheckStepHealthResult.unhealthy(reason=reason)
