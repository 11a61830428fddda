"""An asset's pod: its declared ``resources`` as the ``dagster-k8s/config`` op tag.

dagster-k8s reads that tag when it builds the step's Job (``k8s_job`` orchestrator): the
container's requests and limits, and the pod's node selector and tolerations. Other
executors ignore it, so the same definition runs anywhere.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from assets.spec.fields import Closed
from assets.spec.schedules import parse_duration
from resources.settings import MEMORY_LIMIT

CPU_QUANTITY = r"^([0-9]+(\.[0-9]{1,3})?|[0-9]+m)$"


MEMORY_QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"


class Toleration(Closed):
    """A Kubernetes toleration: lets the pod run on nodes with a matching taint."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class ComputeResources(Closed):
    """What the asset's pod asks for, on a stack that runs one pod per asset (``k8s_job``); ignored elsewhere.

    Requests are what the scheduler reserves. Memory is also the limit (a pod over it is killed
    rather than starving its node); the CPU limit is the request unless ``cpu_limit`` raises it.
    What an asset leaves out keeps the deployment's defaults for step pods (the Helm chart's).
    """

    cpu: str | None = Field(default=None, pattern=CPU_QUANTITY, description='CPU request: "2", "0.5" or "500m".')
    memory: str | None = Field(default=None, pattern=MEMORY_QUANTITY, description='Memory request and limit: "4Gi".')
    cpu_limit: str | None = Field(default=None, pattern=CPU_QUANTITY, description="CPU limit; the request when unset.")
    gpu: int = Field(default=0, ge=0, le=16, strict=True, description="GPUs (the limit of gpu_resource).")
    gpu_resource: str = Field(
        default="nvidia.com/gpu", pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-]+$", description="The GPU's extended resource."
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pod must run on.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pod tolerates.")

    @field_validator("cpu", "cpu_limit", "memory", mode="before")
    @classmethod
    def _number_as_quantity(cls, value: Any) -> Any:
        # Kubernetes takes `cpu: 2` and `cpu: 0.5` unquoted; so does this.
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _limit_not_below_request(self) -> ComputeResources:
        if self.cpu and self.cpu_limit and _cpus(self.cpu_limit) < _cpus(self.cpu):
            raise ValueError(
                f"cpu_limit {self.cpu_limit} is below the cpu request {self.cpu}: Kubernetes refuses the pod"
            )
        return self


def _cpus(quantity: str) -> float:
    """A CPU quantity (``"2"``, ``"0.5"``, ``"500m"``) in CPUs."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


class QueryLimits(Closed):
    """Limits of one dataset's ``sql`` query, in place of the stack's ``query_engine`` ones."""

    memory: str | None = Field(
        default=None, pattern=MEMORY_LIMIT, description="Most memory the query may use: 8GB, 512MiB or 50%."
    )
    timeout: str | None = Field(default=None, description="Most time the query may run: 90s, 30m, 2h.")

    @field_validator("timeout")
    @classmethod
    def _duration(cls, timeout: str | None) -> str | None:
        if timeout is not None:
            parse_duration(timeout)
        return timeout

    def timeout_seconds(self) -> int | None:
        """The time limit in seconds, or None for the stack's."""
        return parse_duration(self.timeout) if self.timeout else None


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
