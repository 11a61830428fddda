"""An asset's pod: its declared ``resources`` as the ``dagster-k8s/config`` op tag.

dagster-k8s reads that tag when it builds the step's Job (``k8s_job`` orchestrator): the
container's requests and limits, and the pod's node selector and tolerations. Other
executors ignore it, so the same definition runs anywhere.
"""

from __future__ import annotations

from typing import Any

from assets.spec.schema import ComputeResources

K8S_TAG = "dagster-k8s/config"


def op_tags(resources: ComputeResources | None) -> dict[str, Any]:
    """The op tags for an asset declaring ``resources`` (none without)."""
    if resources is None:
        return {}
    # A limit alone is also the request: the chart's default request for step pods could exceed it.
    requests = {k: v for k, v in (("cpu", resources.cpu or resources.cpu_limit), ("memory", resources.memory)) if v}
    # A limit below the request is refused by Kubernetes, and the chart's defaults for step pods
    # are merged under these: so the CPU limit is the request unless cpu_limit raises it.
    cpu_limit = resources.cpu_limit or resources.cpu
    limits = {k: v for k, v in (("cpu", cpu_limit), ("memory", resources.memory)) if v}
    if resources.gpu:
        # Extended resources are set as limits; Kubernetes makes the request equal.
        limits[resources.gpu_resource] = str(resources.gpu)
    container = {"resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v}}
    pod: dict[str, Any] = {}
    if resources.node_selector:
        pod["node_selector"] = dict(resources.node_selector)
    if resources.tolerations:
        pod["tolerations"] = [t.model_dump(exclude_none=True) for t in resources.tolerations]
    config = {
        k: v for k, v in (("container_config", container), ("pod_spec_config", pod)) if v and v != {"resources": {}}
    }
    return {K8S_TAG: config} if config else {}
