"""The orchestrator role: where the steps of a run execute, and how `slipway run` launches on it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from stacks.component import Component

#: What the multiprocess executor's fork server imports before it forks a step process: the code
#: location's module (Dagster, Slipway and what they import) and the libraries every step reads.
PRELOADED = (
    "definitions.definitions",
    "pandas",
    "pyarrow.parquet",
    "sklearn.metrics",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
)


class InProcessOrchestrator(Component):
    """Every step in the calling process: the fastest choice on one machine."""

    type: Literal["in_process"] = "in_process"
    #: `slipway run` launches on it (in its own process).
    cli_launch: ClassVar[bool] = True

    def launch(self, run: Any) -> Any:
        """Launch ``run`` (:class:`stacks.launch.Launch`): every step in this process."""
        from stacks.launch import in_process

        return in_process(run)

    def executor(self) -> Any:
        """The Dagster executor."""
        import dagster as dg

        return dg.in_process_executor


class MultiprocessOrchestrator(Component):
    """Each step in a process of its own on this machine (a stand-in for pods, without a cluster)."""

    type: Literal["multiprocess"] = "multiprocess"
    #: `slipway run` launches on it (in step processes it starts).
    cli_launch: ClassVar[bool] = True
    max_concurrent: int = Field(default=0, ge=0, le=256, description="Steps at once; 0: one per CPU.")

    def executor(self) -> Any:
        """The Dagster executor."""
        import dagster as dg

        # Step processes fork from a server that has imported the code location's modules once,
        # instead of each spawning a Python that imports Dagster, pandas and Slipway anew.
        start = {"forkserver": {"preload_modules": list(PRELOADED)}}
        config = {"max_concurrent": self.max_concurrent, "start_method": start}
        return dg.multiprocess_executor.configured(config, name="multiprocess")

    def launch(self, run: Any) -> Any:
        """Launch ``run`` (:class:`stacks.launch.Launch`): each step in a process of its own."""
        from stacks.launch import in_step_processes

        return in_step_processes(run)


class K8sJobOrchestrator(Component):
    """Each step in a Kubernetes Job of its own (dagster-k8s ``k8s_job_executor``): one pod per asset.

    A step's pod gets the run's image, env and secrets (the code server's container context,
    set by the Helm chart) plus the asset's own ``resources`` from its definition.
    """

    type: Literal["k8s_job"] = "k8s_job"
    #: `slipway run` does not launch on it: runs go through the Dagster deployment.
    cli_launch: ClassVar[bool] = False
    max_concurrent: int = Field(default=8, ge=1, le=1000, description="Step pods of one run at once.")
    job_namespace: str | None = Field(
        default=None,
        description="Namespace of the step Jobs; the run's own when unset (the chart's release namespace).",
    )
    service_account_name: str | None = Field(
        default=None, description="Service account of the step pods; the run pod's when unset."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="Pull policy of step pods; Kubernetes' default when unset."
    )
    env_secrets: list[str] = Field(
        default_factory=list, description="Secrets whose keys become environment variables in every step pod."
    )
    env_config_maps: list[str] = Field(
        default_factory=list, description="ConfigMaps whose keys become environment variables in every step pod."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels on every step Job and pod.")
    retries: Literal["enabled", "disabled"] = Field(
        default="disabled", description="Dagster's step retries (op retry policies)."
    )
    pod_start_timeout: int = Field(
        default=120,
        ge=10,
        le=86400,
        description=(
            "Seconds a step pod may stay unable to start (an image that cannot be pulled, a missing"
            " Secret, no node with room) before its step fails naming why; pulling and scheduling"
            " themselves are never cut short."
        ),
    )

    def executor_config(self) -> dict[str, Any]:
        """The config of dagster-k8s's ``k8s_job_executor``."""
        config: dict[str, Any] = {"max_concurrent": self.max_concurrent, "retries": {self.retries: {}}}
        for key in ("job_namespace", "service_account_name", "image_pull_policy"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        for key in ("env_secrets", "env_config_maps", "labels"):
            if getattr(self, key):
                config[key] = getattr(self, key)
        return config

    def executor(self) -> Any:
        """The Dagster executor: dagster-k8s's, watching its step pods start (stacks/k8s_steps.py)."""
        from stacks.k8s_steps import executor

        return executor(self.executor_config(), self.pod_start_timeout)

    def launch(self, run: Any) -> Any:
        """Not from `slipway run`: the Dagster deployment launches (its UI, sensors, `dagster job launch`)."""
        from resources.errors import SlipwayError

        raise SlipwayError(f"`slipway run` does not launch on {self.type}: runs go through the Dagster deployment")
