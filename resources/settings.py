"""The settings of each resource implementation, declared once.

A resource class inherits its implementation's settings (``class S3ArtifactStore(ArtifactStore,
S3StoreSettings)``) and the stack schema inherits the same class with its ``type:`` tag
(:mod:`stacks.config`), so a field, its default, its bounds and its description exist in one
place: the stack file, ``slipway stack show``, the Helm chart's ``values.schema.json`` and the
Dagster resource all read this. Plain pydantic, no Dagster: loading a stack imports nothing heavy.
Secrets are never a setting: a setting may only *name* the environment variable that holds one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from resources.formats import SKOPS_TRUSTED_TYPES
from resources.paths import slipway_home

ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


def _in_home(value: str | None) -> str | None:
    """``${SLIPWAY_HOME}`` in a default, expanded (a resource built without a stack file gets a real path)."""
    return value.replace("${SLIPWAY_HOME}", str(slipway_home())) if value else value


class MlflowTrackerSettings(BaseModel):
    """MLflow experiment tracking through an explicit MlflowClient."""

    tracking_uri: str = Field(
        default="sqlite:///${SLIPWAY_HOME}/mlflow.db",
        validate_default=True,
        description="MLflow tracking URI (sqlite:///…, http://…, postgresql://…). A database password in it "
        "is redacted wherever shown; an MLflow server's credentials come from MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD.",
    )
    artifact_location: str | None = Field(
        default="${SLIPWAY_HOME}/mlartifacts",
        validate_default=True,
        description="Root for new experiments' artifacts; the server's own (e.g. S3 behind it) when unset.",
    )
    ui_url: str = Field(default="http://127.0.0.1:5000", description="Base URL of the MLflow UI, for run links.")
    serialization: Literal["cloudpickle", "skops"] = Field(
        default="cloudpickle",
        description="scikit-learn model format: cloudpickle (fast) or skops (safe to load from untrusted stores).",
    )
    skops_trusted_types: list[str] = Field(
        default_factory=lambda: list(SKOPS_TRUSTED_TYPES),
        description="Types skops may save and load beyond its defaults (serialization: skops only).",
    )

    _home = field_validator("tracking_uri", "artifact_location", mode="after")(_in_home)


class MlflowRegistrySettings(BaseModel):
    """The MLflow model registry; aliases mark champion and challenger."""

    registry_uri: str | None = Field(default=None, description="Registry URI; the tracker's tracking_uri when unset.")


class LocalStoreSettings(BaseModel):
    """Asset outputs on the local file system."""

    base_dir: str = Field(
        default="${SLIPWAY_HOME}/artifacts", validate_default=True, description="Root folder for artifacts."
    )

    _home = field_validator("base_dir", mode="after")(_in_home)


class S3StoreSettings(BaseModel):
    """Asset outputs in an S3-compatible object store (AWS S3, MinIO, Ceph, moto).

    Credentials come from the environment only (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a
    Kubernetes secret mounted as those, or the pod's IAM role): never from this file.
    """

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$", description="Bucket.")
    prefix: str = Field(default="slipway", description="Key prefix inside the bucket.")
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^@/\s]+(/\S*)?$",
        description="S3 API endpoint, http(s)://host:port (MinIO, Ceph, moto); AWS's own when unset. No credentials.",
    )
    region: str | None = Field(default=None, description="Region; the environment's (AWS_REGION) when unset.")
    attempts: int = Field(default=4, ge=1, le=10, description="Attempts per request (network errors, 5xx, throttling).")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="Connect and read timeout per attempt.")


class GreatExpectationsSettings(BaseModel):
    """Great Expectations 1.x, ephemeral context."""

    result_format: Literal["BASIC", "SUMMARY", "COMPLETE"] = Field(
        default="SUMMARY", description="How much of each failing expectation's result is kept."
    )


# What DuckDB reads as a memory limit: an amount (4GB, 512MiB) or a share of the machine's memory (50%).
MEMORY_LIMIT = r"^[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|%)$"


class DuckdbEngineSettings(BaseModel):
    """DuckDB in this process, locked down (no files, no network), with a memory and a time limit per query."""

    memory_limit: str = Field(
        default="50%",
        pattern=MEMORY_LIMIT,
        description="Most memory one query may use: an amount (4GB, 512MiB) or a share of the machine's (50%).",
    )
    timeout_seconds: float = Field(
        default=900, gt=0, le=7 * 86400, description="Most time one query may run before it is stopped."
    )


class StatisticalDriftSettings(BaseModel):
    """PSI, the KS statistic and Cramér's V per feature."""

    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins for PSI.")


class LogAlerterSettings(BaseModel):
    """Alerts as warning lines in the run or sensor log."""


class WebhookAlerterSettings(BaseModel):
    """Alerts as a Slack-compatible JSON POST; the URL only from the environment, never from this file."""

    url_env: str = Field(
        default="SLIPWAY_ALERT_WEBHOOK",
        pattern=ENV_NAME,
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
