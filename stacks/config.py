"""Typed, closed stack configuration, and the registry of each role's implementations.

Each component is a ``type:`` plus the settings of that type (``extra="forbid"``). A resource
implementation's settings are declared once, in :mod:`resources.settings`: the Dagster resource
inherits them, and so does its entry here, which adds the ``type:`` tag and names the resource
class to build. :data:`COMPONENT_TYPES` is the registry: adding an implementation is one class
and one entry, never an ``if`` in the builder. The ``Field`` descriptions flow into the JSON
Schema (``slipway stack show``, the Helm chart's ``values.schema.json``).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from resources.settings import (
    ENV_NAME,
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


class _Component(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The Dagster resource this implementation builds, as ``module:Class`` (imported when the
    #: stack is built, so that loading a stack imports no Dagster, MLflow or boto3).
    resource: ClassVar[str] = ""

    def resource_settings(self, stack: StackFields) -> dict[str, Any]:
        """The keyword arguments of :attr:`resource`: this component's settings."""
        return self.model_dump(exclude={"type", "storage"})

    def needs(self) -> list[tuple[str, str, bool, str]]:
        """``(key, environment variable, required, what it means)`` for each variable this component reads.

        A required one must be set to run at all (a password); another only changes what
        happens (an alert with no webhook URL is logged).
        """
        return []


# --- orchestrator: where the steps of a run execute --------------------------------------------


class InProcessOrchestrator(_Component):
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


class MultiprocessOrchestrator(_Component):
    """Each step in a process of its own on this machine (a stand-in for pods, without a cluster)."""

    type: Literal["multiprocess"] = "multiprocess"
    #: `slipway run` launches on it (in step processes it starts).
    cli_launch: ClassVar[bool] = True
    max_concurrent: int = Field(default=0, ge=0, le=256, description="Steps at once; 0: one per CPU.")

    def executor(self) -> Any:
        """The Dagster executor."""
        import dagster as dg

        return dg.multiprocess_executor.configured({"max_concurrent": self.max_concurrent}, name="multiprocess")

    def launch(self, run: Any) -> Any:
        """Launch ``run`` (:class:`stacks.launch.Launch`): each step in a process of its own."""
        from stacks.launch import in_step_processes

        return in_step_processes(run)


class K8sJobOrchestrator(_Component):
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
        """The Dagster executor (dagster-k8s, imported only here)."""
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(self.executor_config(), name="k8s_job")

    def launch(self, run: Any) -> Any:
        """Not from `slipway run`: the Dagster deployment launches (its UI, sensors, `dagster job launch`)."""
        from resources.errors import SlipwayError

        raise SlipwayError(f"`slipway run` does not launch on {self.type}: runs go through the Dagster deployment")


# --- instance: Dagster's record (runs, events, schedules) --------------------------------------


class _Instance(_Component):
    base_dir: str = Field(
        default="${SLIPWAY_HOME}/dagster", description="DAGSTER_HOME for this stack (a local folder)."
    )
    capture_compute_logs: bool = Field(
        default=False,
        description="Keep each step's stdout/stderr for the UI; costs a log-tailing process per step.",
    )

    @abstractmethod
    def dagster_storage(self) -> dict[str, Any]:
        """The storage part of the instance's ``dagster.yaml``."""

    @abstractmethod
    def where(self) -> str:
        """The record's location for messages, never with a password."""

    def watermark(self) -> str | None:
        """The record's state, read without opening the instance; None when it cannot be read cheaply."""
        return None


class SqliteInstance(_Instance):
    """Dagster instance storage in SQLite files under ``base_dir``: one machine."""

    storage: Literal["sqlite"] = "sqlite"

    def dagster_storage(self) -> dict[str, Any]:  # noqa: D102
        root = Path(self.base_dir) / "storage"
        return {
            # Dagster's SQLite layout (what `storage: sqlite` makes), with the event log that keeps
            # one engine per database (stacks.dagster_storage): ~5 ms less per asset.
            "run_storage": _storage("dagster._core.storage.runs", "SqliteRunStorage", root / "history"),
            "event_log_storage": _storage(
                "stacks.dagster_storage", "SlipwayEventLogStorage", root / "history" / "runs"
            ),
            "schedule_storage": _storage(
                "dagster._core.storage.schedules", "SqliteScheduleStorage", root / "schedules"
            ),
        }

    def where(self) -> str:  # noqa: D102
        return f"{self.base_dir}/storage"

    def watermark(self) -> str | None:  # noqa: D102
        # Runs, then asset events (the index shard) and runless events such as source
        # observations (the "" run's shard).
        history = Path(self.base_dir) / "storage" / "history"
        ids = [
            _max_id(history / "runs.db", "runs"),
            _max_id(history / "runs" / "index.db", "event_logs"),
            _max_id(history / "runs" / ".db", "event_logs") if (history / "runs" / ".db").exists() else "-",
        ]
        return None if None in ids else "/".join(str(i) for i in ids)


class PostgresInstance(_Instance):
    """Dagster instance storage in PostgreSQL (dagster-postgres): shared by every machine and pod.

    The password is read from the environment variable ``password_env`` by Dagster itself; it
    is never written to the instance's ``dagster.yaml``.
    """

    storage: Literal["postgres"] = "postgres"
    hostname: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9.\-]+$", description="PostgreSQL host name.")
    port: int = Field(default=5432, ge=1, le=65535, description="PostgreSQL port.")
    db_name: str = Field(default="dagster", description="Database (created by the operator; tables by Dagster).")
    username: str = Field(default="dagster", description="Database user.")
    password_env: str | None = Field(
        default="DAGSTER_PG_PASSWORD",
        pattern=ENV_NAME,
        description="Environment variable (a Kubernetes secret) holding the password; unset for trust or peer auth.",
    )
    params: dict[str, str] = Field(
        default_factory=dict, description="libpq connection parameters, e.g. {sslmode: require}; never a password."
    )

    @model_validator(mode="after")
    def _no_secret_params(self) -> PostgresInstance:
        secret = sorted(k for k in self.params if k.lower() in ("password", "sslpassword"))
        if secret:
            raise ValueError(f"params.{secret[0]}: a password is never a setting; name its variable in password_env")
        return self

    def dagster_storage(self) -> dict[str, Any]:  # noqa: D102
        database: dict[str, Any] = {
            "hostname": self.hostname,
            "port": self.port,
            "db_name": self.db_name,
            "username": self.username,
            # Dagster reads {env: NAME} when the instance starts: the password never sits in a file.
            "password": {"env": self.password_env} if self.password_env else "",
            # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the driver installed is psycopg2.
            "scheme": "postgresql+psycopg2",
        }
        if self.params:
            database["params"] = dict(self.params)
        return {"storage": {"postgres": {"postgres_db": database}}}

    def where(self) -> str:  # noqa: D102
        return f"postgresql://{self.username}@{self.hostname}:{self.port}/{self.db_name}"

    def needs(self) -> list[tuple[str, str, bool, str]]:  # noqa: D102
        if not self.password_env:
            return []
        return [("instance.password_env", self.password_env, True, "required to run on this stack")]


def _max_id(database: Path, table: str) -> str | None:
    import sqlite3
    from contextlib import closing

    if not database.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
            # The count catches deletions (a wiped asset, a deleted run), which lower no maximum.
            row = db.execute(f"select max(id), count(*) from {table}").fetchone()  # noqa: S608 (fixed names)
    except sqlite3.Error:
        return None
    return f"{row[0]}:{row[1]}"


def _storage(module: str, name: str, base_dir: Path) -> dict[str, Any]:
    return {"module": module, "class": name, "config": {"base_dir": str(base_dir)}}


# --- resources -------------------------------------------------------------------------------


class MlflowTrackerConfig(MlflowTrackerSettings, _Component):
    """MLflow on a store this process opens itself (SQLite locally, or a database URL)."""

    resource: ClassVar[str] = "resources.tracker:MlflowTracker"
    type: Literal["mlflow"] = "mlflow"


class MlflowServerTrackerConfig(MlflowTrackerSettings, _Component):
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


class MlflowRegistryConfig(MlflowRegistrySettings, _Component):
    """The MLflow model registry; aliases mark champion and challenger."""

    resource: ClassVar[str] = "resources.mlflow_registry:MlflowModelRegistry"
    type: Literal["mlflow"] = "mlflow"

    def resource_settings(self, stack: StackFields) -> dict[str, Any]:  # noqa: D102
        return {**super().resource_settings(stack), "tracking_uri": stack.experiment_tracker.tracking_uri}


class LocalArtifactStoreConfig(LocalStoreSettings, _Component):
    """Asset outputs on the local file system."""

    resource: ClassVar[str] = "resources.artifacts:LocalArtifactStore"
    type: Literal["local"] = "local"


class S3ArtifactStoreConfig(S3StoreSettings, _Component):
    """Asset outputs in an S3-compatible bucket; credentials from the environment or a Kubernetes secret."""

    resource: ClassVar[str] = "resources.artifacts:S3ArtifactStore"
    type: Literal["s3"] = "s3"


class GreatExpectationsConfig(GreatExpectationsSettings, _Component):
    """Great Expectations 1.x, ephemeral context."""

    resource: ClassVar[str] = "resources.validator:GreatExpectationsValidator"
    type: Literal["great_expectations"] = "great_expectations"


class DuckdbEngineConfig(DuckdbEngineSettings, _Component):
    """DuckDB in this process, locked down (no files, no network), with a memory and a time limit per query."""

    resource: ClassVar[str] = "resources.query:DuckdbEngine"
    type: Literal["duckdb"] = "duckdb"


class StatisticalDriftConfig(StatisticalDriftSettings, _Component):
    """PSI, the KS statistic and Cramér's V per feature."""

    resource: ClassVar[str] = "resources.drift:StatisticalDriftDetector"
    type: Literal["statistical"] = "statistical"


class LogAlerterConfig(LogAlerterSettings, _Component):
    """Alerts as warning lines in the run or sensor log."""

    resource: ClassVar[str] = "resources.alerts:LogAlerter"
    type: Literal["log"] = "log"


class WebhookAlerterConfig(WebhookAlerterSettings, _Component):
    """Alerts as a Slack-compatible JSON POST; the URL only from the environment, never from this file."""

    resource: ClassVar[str] = "resources.alerts:WebhookAlerter"
    type: Literal["webhook"] = "webhook"

    def needs(self) -> list[tuple[str, str, bool, str]]:  # noqa: D102
        return [("alerter.url_env", self.url_env, False, "optional, alerts are only logged without it")]


#: The registry: for each role, its implementations by ``type:`` (``storage:`` for the instance).
COMPONENT_TYPES: dict[str, dict[str, type[_Component]]] = {
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
