"""The Kubernetes Job dagster-k8s would create for each asset's step, built offline with its own functions.

The context is assembled the way ``K8sStepHandler._get_container_context`` does it: the code
server's container context (rendered by the Helm chart), then the ``k8s_job`` executor's config
(from ``stacks/k8s.yaml``), then the step's ``dagster-k8s/config`` tag (the asset's declared
``resources``). Each Job is validated against the Kubernetes schemas in strict mode.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from k8s_tools import helm, split_documents, validate_manifests

from definitions.definitions import build_definitions
from definitions.paths import DEFS_DIR
from stacks import load_stack

REPO = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/acme/slipway:1"


def chart_context() -> dict[str, Any]:
    rendered = helm("template", "slipway", REPO / "helm" / "slipway", "--namespace", "ml")
    assert rendered.returncode == 0, rendered.stderr
    (server,) = [
        d
        for d in split_documents(rendered.stdout)
        if d["kind"] == "Deployment" and "code-server" in d["metadata"]["name"]
    ]
    env = {e["name"]: e for e in server["spec"]["template"]["spec"]["containers"][0]["env"]}
    return json.loads(env["DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT"]["value"])


def step_jobs(defs_dir: Path) -> dict[str, dict[str, Any]]:
    """Every asset's step Job manifest (by asset key), on the k8s stack, as dagster-k8s builds it."""
    import kubernetes
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_k8s_job_name,
        get_user_defined_k8s_config,
    )

    loaded = load_stack("k8s")
    defs = build_definitions(defs_dir, loaded)
    job = defs.resolve_implicit_global_asset_job_def()
    executor = loaded.stack.orchestrator.executor_config()
    assert job.executor_def.name == "k8s_job"
    base = K8sContainerContext.create_from_config(chart_context()).merge(
        K8sContainerContext(
            service_account_name=executor.get("service_account_name"),
            env_config_maps=executor.get("env_config_maps"),
            env_secrets=executor.get("env_secrets"),
            labels=executor.get("labels"),
            namespace=executor.get("job_namespace"),
            run_k8s_config=UserDefinedDagsterK8sConfig.from_dict({}),
        )
    )
    jobs = {}
    graph = defs.resolve_asset_graph()
    ops = []
    for key in graph.materializable_asset_keys:
        node = graph.get(key).assets_def.node_def
        if isinstance(node, dg.GraphDefinition):  # a sweep: a step per trial, then train
            ops += [(f"{node.name}.{inner.name}", inner.definition) for inner in node.nodes]
        else:
            ops.append((node.name, node))
    for step_key, op in ops:
        context = base.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op.tags)))
        name = f"dagster-step-{get_k8s_job_name('0123abcd-run', step_key)}"
        built = construct_dagster_k8s_job(
            DagsterK8sJobConfig(job_image=IMAGE, dagster_home="/opt/dagster/dagster_home"),
            ["dagster", "api", "execute_step"],
            name,
            context.run_k8s_config,
            pod_name=name,
            component="step_worker",
            labels={"dagster/op": step_key},
            env_vars=[{"name": "DAGSTER_RUN_STEP_KEY", "value": step_key}],
        )
        jobs[step_key] = kubernetes.client.ApiClient().sanitize_for_serialization(built)
    return jobs


def test_every_example_asset_gets_a_valid_step_job_with_its_declared_resources(home):
    jobs = step_jobs(DEFS_DIR)
    assert len(jobs) == 12  # every materializable example asset
    problems = validate_manifests(list(jobs.values()))
    assert problems == []
    churn = jobs["churn__churn_classifier"]["spec"]["template"]["spec"]["containers"][0]
    # defs.yaml: resources: {cpu: "1", memory: 2Gi}: requested, and the limits.
    assert churn["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    # An asset without resources keeps the chart's default for step pods.
    plain = jobs["diabetes__patients"]["spec"]["template"]["spec"]
    assert plain["containers"][0]["resources"] != churn["resources"]
    for manifest in jobs.values():
        pod = manifest["spec"]["template"]["spec"]
        env = {e["name"] for e in pod["containers"][0]["env"]}
        assert {"SLIPWAY_STACK", "DAGSTER_PG_PASSWORD"} <= env
        assert pod["containers"][0]["image"] == IMAGE


def test_gpus_node_selectors_and_tolerations_reach_the_pod(defs_dir, home):
    (defs_dir / "gpu").mkdir()
    (defs_dir / "gpu" / "defs.yaml").write_text(
        textwrap.dedent(
            """
            type: assets.Pipeline
            attributes:
              name: gpu
              datasets:
                rows:
                  source: {sklearn: iris}
                  resources: {memory: 512Mi}
              models:
                clf:
                  dataset: rows
                  target: target
                  estimator: sklearn.linear_model.LogisticRegression
                  metrics: [accuracy]
                  resources:
                    cpu: "4"
                    cpu_limit: "8"
                    memory: 16Gi
                    gpu: 2
                    node_selector: {cloud.google.com/gke-accelerator: nvidia-l4}
                    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
            """
        )
    )
    jobs = step_jobs(defs_dir)
    assert validate_manifests(list(jobs.values())) == []
    pod = jobs["gpu__clf"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    rows = jobs["gpu__rows"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    # What the asset leaves out (CPU) keeps the chart's default for step pods.
    chart = chart_context()["k8s"]["resources"]
    assert rows == {
        "requests": {"cpu": chart["requests"]["cpu"], "memory": "512Mi"},
        "limits": {"cpu": chart["limits"]["cpu"], "memory": "512Mi"},
    }


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ('{cpu: "two"}', "resources.cpu"),
        ("{memory: 4GB}", "resources.memory"),
        ("{gpu: -1}", "resources.gpu"),
        ('{cpu: "2", cpu_limit: 500m}', "cpu_limit 500m is below the cpu request 2"),
        ("{tolerations: [{operator: Sometimes}]}", "resources.tolerations"),
    ],
)
def test_a_bad_pod_size_is_refused_by_validate_with_its_path(defs_dir, home, resources, message):
    from definitions.cli.validate import validate
    from resources.errors import DefinitionError

    (defs_dir / "p").mkdir()
    (defs_dir / "p" / "defs.yaml").write_text(
        "type: assets.Pipeline\nattributes:\n  name: p\n  datasets:\n    rows:\n"
        f"      source: {{sklearn: iris}}\n      resources: {resources}\n"
    )
    with pytest.raises(DefinitionError, match=rf"defs.yaml:\d+: .*{message}"):
        validate(defs_dir=defs_dir)


def test_the_executor_is_dagster_k8s_with_the_stack_s_concurrency(home):
    loaded = load_stack("k8s")
    executor = build_definitions(DEFS_DIR, loaded).resolve_implicit_global_asset_job_def().executor_def
    assert executor.name == "k8s_job"
    assert loaded.stack.orchestrator.executor_config()["max_concurrent"] == 8
    assert isinstance(executor, dg.ExecutorDefinition)


def test_each_trial_of_a_sweep_is_a_step_job_with_the_models_resources(defs_dir, home):
    (defs_dir / "lab").mkdir()
    (defs_dir / "lab" / "defs.yaml").write_text(
        textwrap.dedent(
            """
            type: assets.Pipeline
            attributes:
              name: lab
              datasets:
                rows:
                  source: {sklearn: diabetes}
              models:
                tree:
                  dataset: rows
                  target: target
                  estimator: sklearn.tree.DecisionTreeRegressor
                  metrics: [rmse]
                  resources: {cpu: "2", memory: 3Gi}
                  sweep: {params: {max_depth: [2, 4, 8]}, parallelism: 2}
            """
        )
    )
    jobs = step_jobs(defs_dir)
    trials = sorted(k for k in jobs if k.startswith("lab__tree.trial_"))
    assert len(trials) == 3 and "lab__tree.train" in jobs
    assert validate_manifests(list(jobs.values())) == []
    for step in [*trials, "lab__tree.train"]:
        container = jobs[step]["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"] == {
            "requests": {"cpu": "2", "memory": "3Gi"},
            "limits": {"cpu": "2", "memory": "3Gi"},
        }
