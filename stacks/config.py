"""Typed, closed stack configuration, and the registry of each role's implementations.

Each component is a ``type:`` plus the settings of that type (``extra="forbid"``). A resource
implementation's settings are declared once, in :mod:`resources.settings`: the Dagster resource
inherits them, and so does its entry here, which adds the ``type:`` tag and names the resource
class to build. :data:`COMPONENT_TYPES` is the registry: adding an implementation is one class
and one entry, never an ``if`` in the builder. The ``Field`` descriptions flow into the JSON
Schema (``slipway stack show``, the Helm chart's ``values.schema.json``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from resources.settings import (
    DuckdbEngineSettings,
    GreatExpectationsSettings,
    LocalStoreSettings,
    LogAlerterSettings,
    MlflowRegistrySettings,
    MlflowTrackerSettings,
    S3StoreSettings,
    StatisticalDriftSettings,
    WebhookAlerterSettings,
)
from stacks.component import Component
from stacks.deployers import KubernetesDeployer, LocalDeployer, NoDeployer
from stacks.instances import PostgresInstance, SqliteInstance
from stacks.orchestrators import InProcessOrchestrator, K8sJobOrchestrator, MultiprocessOrchestrator

# --- resources -------------------------------------------------------------------------------


class MlflowTrackerConfig(MlflowTrackerSettings, Component):
    """MLflow on a store this process opens itself (SQLite locally, or a database URL)."""

    resource: ClassVar[str] = "resources.tracker:MlflowTracker"
    type: Literal["mlflow"] = "mlflow"


class MlflowServerTrackerConfig(MlflowTrackerSettings, Component):
    """MLflow through a tracking server (``mlflow server``): its backend store and artifacts (S3) are the server's.

    Artifacts go through the server (``--serve-artifacts``), so steps need no object-store
    credentials for them. A server behind basic auth reads MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD from the environment.
    """

    resource: ClassVar[str] = "resources.tracker:MlflowTracker"
    type: Literal["mlflow_server"] = "mlflow_server"
    tracking_uri: str = Field(pattern=r"^https?://", description="The tracking server's URL (http(s)://host:port).")
    artifact_location: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z][a-zA-Z0-9+.\-]*://",
        description="Root for new experiments' artifacts as a URI every pod can reach (s3://…); "
        "the server's own destination when unset. Never a local folder.",
    )
    ui_url: str = Field(default="", description="Base URL of the MLflow UI for run links; the tracking URL when unset.")

    @model_validator(mode="after")
    def _ui(self) -> MlflowServerTrackerConfig:
        if not self.ui_url:
            object.__setattr__(self, "ui_url", self.tracking_uri)
        if "@" in self.tracking_uri.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "no credentials in tracking_uri: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead"
            )
        return self


class MlflowRegistryConfig(MlflowRegistrySettings, Component):
    """The MLflow model registry; aliases mark champion and challenger."""

    resource: ClassVar[str] = "resources.mlflow_registry:MlflowModelRegistry"
    type: Literal["mlflow"] = "mlflow"

    def resource_settings(self, stack: StackFields) -> dict[str, Any]:  # noqa: D102
        return {**super().resource_settings(stack), "tracking_uri": stack.experiment_tracker.tracking_uri}


class LocalArtifactStoreConfig(LocalStoreSettings, Component):
    """Asset outputs on the local file system."""

    resource: ClassVar[str] = "resources.artifacts:LocalArtifactStore"
    type: Literal["local"] = "local"


class S3ArtifactStoreConfig(S3StoreSettings, Component):
    """Asset outputs in an S3-compatible bucket; credentials from the environment or a Kubernetes secret."""

    resource: ClassVar[str] = "resources.artifacts:S3ArtifactStore"
    type: Literal["s3"] = "s3"


class GreatExpectationsConfig(GreatExpectationsSettings, Component):
    """Great Expectations 1.x, ephemeral context."""

    resource: ClassVar[str] = "resources.validator:GreatExpectationsValidator"
    type: Literal["great_expectations"] = "great_expectations"


class DuckdbEngineConfig(DuckdbEngineSettings, Component):
    """DuckDB in this process, locked down (no files, no network), with a memory and a time limit per query."""

    resource: ClassVar[str] = "resources.query:DuckdbEngine"
    type: Literal["duckdb"] = "duckdb"


class StatisticalDriftConfig(StatisticalDriftSettings, Component):
    """PSI, the KS statistic and Cramér's V per feature."""

    resource: ClassVar[str] = "resources.drift:StatisticalDriftDetector"
    type: Literal["statistical"] = "statistical"


class LogAlerterConfig(LogAlerterSettings, Component):
    """Alerts as warning lines in the run or sensor log."""

    resource: ClassVar[str] = "resources.alerts:LogAlerter"
    type: Literal["log"] = "log"


class WebhookAlerterConfig(WebhookAlerterSettings, Component):
    """Alerts as a Slack-compatible JSON POST; the URL only from the environment, never from this file."""

    resource: ClassVar[str] = "resources.alerts:WebhookAlerter"
    type: Literal["webhook"] = "webhook"

    def needs(self) -> list[tuple[str, str, bool, str]]:  # noqa: D102
        return [("alerter.url_env", self.url_env, False, "optional, alerts are only logged without it")]


#: The registry: for each role, its implementations by ``type:`` (``storage:`` for the instance).
COMPONENT_TYPES: dict[str, dict[str, type[Component]]] = {
    "orchestrator": {
        "in_process": InProcessOrchestrator,
        "multiprocess": MultiprocessOrchestrator,
        "k8s_job": K8sJobOrchestrator,
    },
    "instance": {"sqlite": SqliteInstance, "postgres": PostgresInstance},
    "experiment_tracker": {"mlflow": MlflowTrackerConfig, "mlflow_server": MlflowServerTrackerConfig},
    "model_registry": {"mlflow": MlflowRegistryConfig},
    "artifact_store": {"local": LocalArtifactStoreConfig, "s3": S3ArtifactStoreConfig},
    "data_validator": {"great_expectations": GreatExpectationsConfig},
    "drift_detector": {"statistical": StatisticalDriftConfig},
    "query_engine": {"duckdb": DuckdbEngineConfig},
    "alerter": {"log": LogAlerterConfig, "webhook": WebhookAlerterConfig},
    "model_deployer": {"none": NoDeployer, "local": LocalDeployer, "kubernetes": KubernetesDeployer},
}

#: The resource key each resource role is given to assets under (the artifact store is Dagster's IO manager).
RESOURCE_KEYS = {
    "experiment_tracker": "experiment_tracker",
    "model_registry": "model_registry",
    "data_validator": "data_validator",
    "drift_detector": "drift_detector",
    "query_engine": "query_engine",
    "artifact_store": "io_manager",
    "alerter": "alerter",
}

DEFAULT_ALLOWED_IMPORTS = ["sklearn", "xgboost", "lightgbm", "definitions"]


#: A pod per step shares nothing on disk: each of these roles must be a store every pod reaches.
SHARED_BY_PODS = {"instance": ("storage", "postgres"), "artifact_store": ("type", "s3")}


def _pods_share_stores(schema: dict[str, Any]) -> None:
    """The JSON Schema side of :meth:`StackFields._pods_share_stores` (``helm lint`` checks it too)."""
    schema["allOf"] = [
        {
            "if": {
                "properties": {"orchestrator": {"properties": {"type": {"const": "k8s_job"}}, "required": ["type"]}},
                "required": ["orchestrator"],
            },
            "then": {
                "properties": {
                    role: {"properties": {tag: {"const": value}}, "required": [tag]}
                    for role, (tag, value) in SHARED_BY_PODS.items()
                },
                "required": list(SHARED_BY_PODS),
            },
        }
    ]


class StackFields(BaseModel):
    """The fields of a stack, shared by the settings class and the JSON Schema."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_pods_share_stores)

    # One union per role, of the classes COMPONENT_TYPES lists (a unit test holds the two equal).
    orchestrator: Annotated[
        InProcessOrchestrator | MultiprocessOrchestrator | K8sJobOrchestrator, Field(discriminator="type")
    ] = InProcessOrchestrator()
    instance: Annotated[SqliteInstance | PostgresInstance, Field(discriminator="storage")] = SqliteInstance()
    # Built when a stack is (defaults that name ${SLIPWAY_HOME} are expanded then, for this home).
    experiment_tracker: Annotated[
        MlflowTrackerConfig | MlflowServerTrackerConfig,
        Field(discriminator="type", default_factory=MlflowTrackerConfig),
    ]
    model_registry: Annotated[MlflowRegistryConfig, Field(discriminator="type")] = MlflowRegistryConfig()
    artifact_store: Annotated[
        LocalArtifactStoreConfig | S3ArtifactStoreConfig,
        Field(discriminator="type", default_factory=LocalArtifactStoreConfig),
    ]
    data_validator: Annotated[GreatExpectationsConfig, Field(discriminator="type")] = GreatExpectationsConfig()
    drift_detector: Annotated[StatisticalDriftConfig, Field(discriminator="type")] = StatisticalDriftConfig()
    query_engine: Annotated[DuckdbEngineConfig, Field(discriminator="type")] = DuckdbEngineConfig()
    alerter: Annotated[LogAlerterConfig | WebhookAlerterConfig, Field(discriminator="type")] = LogAlerterConfig()
    model_deployer: Annotated[NoDeployer | LocalDeployer | KubernetesDeployer, Field(discriminator="type")] = (
        NoDeployer()
    )
    allowed_imports: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_IMPORTS),
        description="Module prefixes that import paths in pipeline YAML may name.",
    )
    data_roots: list[str] = Field(
        default_factory=list,
        description="Folders outside the project that file sources may read (absolute paths); the project's "
        "own files and SLIPWAY_HOME are always readable.",
    )

    @model_validator(mode="after")
    def _pods_share_stores(self) -> StackFields:
        if self.orchestrator.type == "k8s_job":
            for role, (tag, value) in SHARED_BY_PODS.items():
                if getattr(getattr(self, role), tag) != value:
                    raise ValueError(
                        f"{role}.{tag}: the k8s_job orchestrator runs each step in a pod of its own, which "
                        f"shares no disk with the others: {role} must be {tag}: {value}"
                    )
        return self

    @model_validator(mode="before")
    @classmethod
    def _sqlite_by_default(cls, data: Any) -> Any:
        # An `instance:` that names no storage (or only overrides a key of it) is SQLite's.
        if isinstance(data, dict) and isinstance(data.get("instance"), dict) and "storage" not in data["instance"]:
            data = {**data, "instance": {**data["instance"], "storage": "sqlite"}}
        return data
