"""The canary of the private Dagster APIs Slipway relies on (resources/dagster_private.py).

Each test exercises one of them against the installed Dagster; an upgrade that moves or
changes one fails here, by name, rather than somewhere in a run.
"""

from __future__ import annotations

import dagster as dg
import pytest

from resources import dagster_private


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def test_the_key_value_store_round_trips(instance):
    assert dagster_private.cursor_values(instance, {"slipway/x"}) == {}
    assert dagster_private.cursor_values(instance, set()) == {}
    dagster_private.set_cursor_values(instance, {"slipway/x": "1", "slipway/y": "2"})
    assert dagster_private.cursor_values(instance, {"slipway/x", "slipway/none"}) == {"slipway/x": "1"}


def test_a_job_step_processes_can_reload_is_found_by_module_and_attribute():
    job = dagster_private.reconstructable_job("definitions.definitions", "defs", "__ASSET_JOB")
    assert job.job_name == "__ASSET_JOB"
    assert job.repository.pointer.module == "definitions.definitions"


def test_an_automation_evaluation_shares_one_asset_graph_view(instance):
    seen = []

    class Probe(dg.AutomationCondition):
        @property
        def name(self) -> str:
            return "probe"

        def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
            seen.append(dagster_private.asset_graph_view(context))
            return dg.AutomationResult(context, context.get_empty_subset())

    @dg.asset(automation_condition=Probe())
    def a() -> None: ...

    @dg.asset(automation_condition=Probe())
    def b() -> None: ...

    dg.evaluate_automation_conditions(defs=dg.Definitions(assets=[a, b]), instance=instance)
    assert len(seen) == 2 and seen[0] is seen[1] and seen[0].instance is instance


def test_the_instance_storage_classes_the_local_stack_names_still_import(tmp_path):
    import importlib

    from stacks.instances import SqliteInstance

    storage = SqliteInstance(base_dir=str(tmp_path)).dagster_storage()
    assert set(storage) == {"run_storage", "event_log_storage", "schedule_storage"}
    for section, entry in storage.items():
        module = importlib.import_module(entry["module"])
        assert hasattr(module, entry["class"]), f"{section}: {entry['module']}.{entry['class']} is gone"


def test_an_evaluation_shows_which_part_of_a_condition_held_an_asset_back(instance):
    rule = (dg.AutomationCondition.missing() & dg.AutomationCondition.in_progress()).with_label("both")

    @dg.asset(automation_condition=rule)
    def a() -> None: ...

    result = dg.evaluate_automation_conditions(defs=dg.Definitions(assets=[a]), instance=instance)
    evaluation = dagster_private.evaluation_of(result, a.key)
    assert dagster_private.label(evaluation) == "both" and dagster_private.held(evaluation)
    missing, in_progress = evaluation.child_results
    assert not dagster_private.held(missing) and dagster_private.held(in_progress)
    assert dagster_private.evaluation_of(result, dg.AssetKey("nothing")) is None


def test_pool_slots_are_listed_by_holder_and_freed(instance):
    storage = instance.event_log_storage
    storage.set_concurrency_slots("slipway-model-a", 1)
    assert storage.claim_concurrency_slot("slipway-model-a", "run-1", "step").is_claimed
    assert dagster_private.pool_holders(instance, "slipway-model-") == {"run-1"}
    assert dagster_private.pool_holders(instance, "other-") == set()
    dagster_private.free_pool_slots(instance, "run-1")
    assert dagster_private.pool_holders(instance, "slipway-model-") == set()


def test_the_latest_failed_execution_of_a_check_is_found(instance):
    @dg.asset(check_specs=[dg.AssetCheckSpec("good", asset="a"), dg.AssetCheckSpec("bad", asset="a")])
    def a():
        yield dg.Output(1)
        yield dg.AssetCheckResult(check_name="good", passed=True)
        yield dg.AssetCheckResult(check_name="bad", passed=False)

    dg.materialize([a], instance=instance, raise_on_error=False)
    keys = [dg.AssetCheckKey(a.key, "good"), dg.AssetCheckKey(a.key, "bad")]
    assert dagster_private.failed_checks(instance, keys) == [dg.AssetCheckKey(a.key, "bad")]


def test_an_evaluation_names_the_upstreams_and_checks_of_a_dependency_rule_and_keeps_metadata(instance):
    class Noted(dg.AutomationCondition):
        @property
        def name(self) -> str:
            return "noted"

        def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
            return dg.AutomationResult(context, context.get_empty_subset(), metadata={"held": "because"})

    @dg.asset
    def up() -> None: ...

    @dg.asset_check(asset=up, blocking=True)
    def up_ok() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    rule = Noted() & dg.AutomationCondition.all_deps_blocking_checks_passed()

    @dg.asset(deps=[up], automation_condition=rule)
    def down() -> None: ...

    defs = dg.Definitions(assets=[up, down], asset_checks=[up_ok])
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    noted, checks = dagster_private.parts(dagster_private.evaluation_of(result, down.key))
    assert dagster_private.evaluation_metadata(noted) == {"held": "because"}
    assert dagster_private.entity(noted) is None
    (upstream,) = dagster_private.parts(checks)
    assert dagster_private.entity(upstream) == up.key
    leaves = [dagster_private.entity(e) for e in _all(upstream)]
    assert dg.AssetCheckKey(up.key, "up_ok") in leaves


def _all(evaluation):
    for part in dagster_private.parts(evaluation):
        yield part
        yield from _all(part)


def test_a_step_delegating_executor_s_handler_can_be_wrapped_and_a_step_found_unhealthy(tmp_path):
    """dagster-k8s's executor, created as a run creates it, gets the wrapper as its step handler."""
    from dagster._core.executor.init import InitExecutorContext

    from stacks.k8s_steps import PodStartWatch, executor

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    definition = executor({"load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}, 30)
    job = dagster_private.reconstructable_job("definitions.definitions", "defs", "__ASSET_JOB")
    with dg.DagsterInstance.ephemeral() as instance:
        context = InitExecutorContext(
            job=job, executor_def=definition, executor_config=definition.apply_config_mapping({}).value["config"],
            instance=instance,
        )  # fmt: skip
        created = definition.executor_creation_fn(context)
    handler = created._step_handler
    assert isinstance(handler, PodStartWatch) and handler.name == "K8sStepHandler"
    result = dagster_private.unhealthy_step("step pod p cannot start: x")
    assert (result.is_healthy, result.unhealthy_reason) == (False, "step pod p cannot start: x")
    with pytest.raises(TypeError, match="does not delegate"):
        dagster_private.wrap_step_handler(object(), lambda h: h)


def test_a_check_result_becomes_the_evaluation_of_one_partition_naming_its_materialization(instance):
    key = dg.AssetKey(["p", "d"])
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition="2026-01-02"))
    wanted = dg.AssetRecordsFilter(asset_key=key, asset_partitions=["2026-01-02"])
    [target] = instance.fetch_materializations(wanted, limit=1).records
    result = dg.AssetCheckResult(check_name="c", passed=False, metadata={"rows": 3})
    evaluation = dagster_private.check_evaluation(key, result, "2026-01-02", True, target)
    assert (evaluation.asset_key, evaluation.check_name, evaluation.partition) == (key, "c", "2026-01-02")
    assert (evaluation.passed, evaluation.blocking, evaluation.metadata["rows"].value) == (False, True, 3)
    assert evaluation.target_materialization_data.storage_id == target.storage_id
    assert evaluation.target_materialization_data.run_id == target.run_id
    assert dagster_private.check_evaluation(key, result, "2026-01-03", False, None).target_materialization_data is None
