"""Typed, closed stack configuration: one model per component type.

Each component is a ``type:`` plus the config of that type (``extra="forbid"``). The
``Field`` descriptions flow into the JSON Schema (and later the Helm chart's
``values.schema.json``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from resources.formats import SKOPS_TRUSTED_TYPES


class _Component(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InProcessOrchestrator(_Component):
    """Every step in the calling process: the fastest choice on one machine."""

    type: Literal["in_process"] = "in_process"


class SqliteInstance(_Component):
    """Dagster instance storage (runs, events, schedules) in SQLite files."""

    storage: Literal["sqlite"] = "sqlite"
    base_dir: str = Field(default="${SLIPWAY_HOME}/dagster", description="DAGSTER_HOME for this stack.")
    capture_compute_logs: bool = Field(
        default=False,
        description="Keep each step's stdout/stderr for the UI; costs a log-tailing process per step.",
    )


class MlflowTrackerConfig(_Component):
    """MLflow experiment tracking through an explicit MlflowClient."""

    type: Literal["mlflow"] = "mlflow"
    tracking_uri: str = Field(default="sqlite:///${SLIPWAY_HOME}/mlflow.db", description="MLflow tracking URI.")
    artifact_location: str | None = Field(
        default="${SLIPWAY_HOME}/mlartifacts", description="Root for experiment artifacts (local stacks)."
    )
    ui_url: str = Field(default="http://127.0.0.1:5000", description="MLflow UI base URL, for run links.")
    serialization: Literal["cloudpickle", "skops"] = Field(
        default="cloudpickle", description="scikit-learn model format in the registry."
    )
    skops_trusted_types: list[str] = Field(
        default_factory=lambda: list(SKOPS_TRUSTED_TYPES),
        description="Types skops may save and load beyond its defaults (serialization: skops only).",
    )


class MlflowRegistryConfig(_Component):
    """The MLflow model registry; aliases mark champion and challenger."""

    type: Literal["mlflow"] = "mlflow"
    registry_uri: str | None = Field(default=None, description="Defaults to the tracker's tracking_uri.")


class LocalArtifactStoreConfig(_Component):
    """Asset outputs on the local file system."""

    type: Literal["local"] = "local"
    base_dir: str = Field(default="${SLIPWAY_HOME}/artifacts", description="Root folder for artifacts.")


class GreatExpectationsConfig(_Component):
    """Great Expectations 1.x, ephemeral context."""

    type: Literal["great_expectations"] = "great_expectations"
    result_format: Literal["BASIC", "SUMMARY", "COMPLETE"] = "SUMMARY"


class StatisticalDriftConfig(_Component):
    """KS statistic and PSI per numeric column."""

    type: Literal["statistical"] = "statistical"
    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins for PSI.")


class LogAlerterConfig(_Component):
    """Alerts as warning lines in the run or sensor log."""

    type: Literal["log"] = "log"


class WebhookAlerterConfig(_Component):
    """Alerts as a Slack-compatible JSON POST; the URL only from the environment, never from this file."""

    type: Literal["webhook"] = "webhook"
    url_env: str = Field(
        default="SLIPWAY_ALERT_WEBHOOK",
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable (or Kubernetes secret) holding the webhook URL.",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Per attempt.")
    retries: int = Field(default=2, ge=0, le=10, description="Attempts after the first (network error, 5xx, 429).")
    backoff_seconds: float = Field(
        default=1.0, ge=0, le=60, description="Wait before the first retry, doubled each time."
    )
    deadline_seconds: float = Field(
        default=20.0, gt=0, le=120, description="Most time one alert may take, retries included."
    )


COMPONENT_TYPES: dict[str, dict[str, type[_Component]]] = {
    "orchestrator": {"in_process": InProcessOrchestrator},
    "experiment_tracker": {"mlflow": MlflowTrackerConfig},
    "model_registry": {"mlflow": MlflowRegistryConfig},
    "artifact_store": {"local": LocalArtifactStoreConfig},
    "data_validator": {"great_expectations": GreatExpectationsConfig},
    "drift_detector": {"statistical": StatisticalDriftConfig},
    "alerter": {"log": LogAlerterConfig, "webhook": WebhookAlerterConfig},
}

DEFAULT_ALLOWED_IMPORTS = ["sklearn", "xgboost", "lightgbm", "definitions"]


class StackFields(BaseModel):
    """The fields of a stack, shared by the settings class and the JSON Schema."""

    model_config = ConfigDict(extra="forbid")

    orchestrator: Annotated[InProcessOrchestrator, Field(discriminator="type")] = InProcessOrchestrator()
    instance: SqliteInstance = SqliteInstance()
    experiment_tracker: Annotated[MlflowTrackerConfig, Field(discriminator="type")] = MlflowTrackerConfig()
    model_registry: Annotated[MlflowRegistryConfig, Field(discriminator="type")] = MlflowRegistryConfig()
    artifact_store: Annotated[LocalArtifactStoreConfig, Field(discriminator="type")] = LocalArtifactStoreConfig()
    data_validator: Annotated[GreatExpectationsConfig, Field(discriminator="type")] = GreatExpectationsConfig()
    drift_detector: Annotated[StatisticalDriftConfig, Field(discriminator="type")] = StatisticalDriftConfig()
    alerter: Annotated[LogAlerterConfig | WebhookAlerterConfig, Field(discriminator="type")] = LogAlerterConfig()
    allowed_imports: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_IMPORTS),
        description="Module prefixes that import paths in pipeline YAML may name.",
    )
