"""The instance role: Dagster's record (runs, events, schedules), in SQLite files or Postgres."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from resources.settings import ENV_NAME
from stacks.component import Component


class _Instance(Component):
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
