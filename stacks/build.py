"""Turn a loaded stack into Dagster resources and a Dagster instance configuration."""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from resources.errors import ResourceError, SlipwayError, StackError
from resources.redact import redact, safe_cause
from stacks.config import COMPONENT_TYPES, RESOURCE_KEYS, StackFields


def build_resources(stack: StackFields) -> dict[str, Any]:
    """The resources every pipeline asset asks for, by key, for this stack.

    Each role's implementation is the one its ``type:`` names in :data:`COMPONENT_TYPES`; its
    resource class is imported here, and given the component's settings.
    """
    from resources.policy import ImportPolicy

    resources: dict[str, Any] = {}
    for role, key in RESOURCE_KEYS.items():
        component = getattr(stack, role)
        module, _, name = component.resource.partition(":")
        resources[key] = getattr(importlib.import_module(module), name)(**component.resource_settings(stack))
    resources["import_policy"] = ImportPolicy(allowed=list(stack.allowed_imports), data_roots=list(stack.data_roots))
    return resources


def missing_variables(stack: StackFields) -> list[tuple[str, str, bool, str]]:
    """``(key, variable, required, what it means)`` for each variable the stack reads that is not set here."""
    return [need for role in COMPONENT_TYPES for need in getattr(stack, role).needs() if not os.environ.get(need[1])]


def needs_lines(stack: StackFields) -> list[str]:
    """One line per environment variable the stack reads that is not set here (names only, never values)."""
    return [f"needs {var} ({key}): not set here; {meaning}" for key, var, _, meaning in missing_variables(stack)]


def executor(stack: StackFields) -> Any:
    """The Dagster executor of the stack's orchestrator (every launch path uses it)."""
    return stack.orchestrator.executor()


def instance_config(stack: StackFields) -> dict[str, Any]:
    """The ``dagster.yaml`` of the stack's Dagster instance."""
    base = Path(stack.instance.base_dir)
    config: dict[str, Any] = {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
        **stack.instance.dagster_storage(),
        "local_artifact_storage": {
            "module": "dagster._core.storage.root",
            "class": "LocalArtifactStorage",
            "config": {"base_dir": str(base)},
        },
    }
    # Model assets sit in a pool of their own (assets.model.model_asset.pool_name): one training per
    # registered model at a time, whichever way its runs are launched on this instance.
    config["concurrency"] = {"pools": {"default_limit": 1, "granularity": "op"}}
    if not stack.instance.capture_compute_logs:
        # The default manager starts a `tail -F` per step to capture stdout; the event log
        # (context.log, metadata) is kept either way. Sensor ticks' logs ("View logs") are kept.
        config["compute_logs"] = {
            "module": "stacks.dagster_logs",
            "class": "TickLogsOnly",
            "config": {"base_dir": str(base / "storage" / "logs")},
        }
    return config


def watermark(stack: StackFields) -> str | None:
    """The state of the record and the registry, read cheaply; None when it cannot be (a server).

    `slipway run`'s no-op cache rests on it: any run, event or registry change moves it.
    """
    record = stack.instance.watermark()
    uri = stack.model_registry.registry_uri or stack.experiment_tracker.tracking_uri
    if record is None or not uri.startswith("sqlite:///"):
        return None
    database = Path(unquote(uri.removeprefix("sqlite:///").partition("?")[0]))
    if not database.is_absolute():
        return None
    return f"{record}/{file_stamp(database)}"


def file_stamp(path: Path) -> str:
    """``path:size:mtime`` (``path:-`` when it is gone): a cheap sign that a file changed."""
    try:
        stat = path.stat()
    except OSError:
        return f"{path}:-"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def prepare_instance(stack: StackFields) -> Path:
    """Write the instance's ``dagster.yaml`` and create its storage when new; return DAGSTER_HOME.

    Several processes may start on a new home at once (`slipway run` beside the UI's webserver
    and daemon, or CI jobs sharing a home), and SQLite schema creation is not safe from two at
    once ("table ... already exists"). So the file is replaced atomically, and the storage is
    created under a lock beside it, once per configuration (a marker records which).
    """
    import hashlib

    missing = [(key, var) for key, var, required, _ in missing_variables(stack) if required]
    if missing:
        raise StackError(
            "; ".join(
                f"{key}: the environment variable {var} is not set (a secret the stack needs)" for key, var in missing
            )
        )
    home = Path(stack.instance.base_dir)
    home.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(instance_config(stack), sort_keys=True)
    target = home / "dagster.yaml"
    marker = home / "storage" / ".slipway-created"  # deleted with the storage it stands for
    created = hashlib.sha256(text.encode()).hexdigest()[:24]
    if _read(target) == text and _read(marker) == created:
        return home
    with (home / ".slipway-instance.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if _read(target) != text:
            scratch = home / f".dagster.yaml.{os.getpid()}"
            scratch.write_text(text)
            os.replace(scratch, target)
        if _read(marker) != created:
            import dagster as dg

            with instance_errors(stack), dg.DagsterInstance.from_config(str(home)) as instance:
                # Each storage creates its schema when it is first built.
                instance.run_storage, instance.event_log_storage, instance.schedule_storage  # noqa: B018
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(created)
    return home


def open_instance(stack: StackFields, read_only: bool = False) -> Any:
    """The stack's Dagster instance, open (:func:`prepare_instance` first); a one-line error when it cannot be.

    ``read_only``: another deployment's record, to read: no table is created in it (Dagster's
    storage creates missing tables when it opens), and a record with none says so.
    """
    import dagster as dg

    if read_only:
        return _open_read_only(stack)
    home = prepare_instance(stack)
    with instance_errors(stack):
        instance = dg.DagsterInstance.from_config(str(home))
        instance.run_storage  # noqa: B018 (connects: a database that is down fails here, not mid-run)
        return instance


def _open_read_only(stack: StackFields) -> Any:
    import dagster as dg

    config = instance_config(stack)
    for storage in config.get("storage", {}).values():
        storage["should_autocreate_tables"] = False
    home = Path(stack.instance.base_dir) / "read-only"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    with instance_errors(stack):
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            instance.get_runs_count()
        except Exception as exc:
            if "does not exist" in str(exc):  # psycopg2's UndefinedTable: relation "runs" does not exist
                instance.dispose()
                raise ResourceError(
                    f"dagster instance ({stack.instance.where()}): no Dagster tables there: nothing has run on "
                    "this deployment yet"
                ) from None
            raise
        return instance


@contextlib.contextmanager
def instance_errors(stack: StackFields) -> Iterator[None]:
    """Turn a failure to open the instance's storage into a :class:`ResourceError` naming where it is.

    dagster-postgres tries a connection 6 times, 0.2 s apart, before it gives up, logging a
    multi-line warning for each try: those are counted here instead, and the error says how many.
    """
    retries = _RetryCounter()
    logging.getLogger().addFilter(retries)
    try:
        yield
    except (OSError, ImportError, SlipwayError):
        raise
    except Exception as exc:
        root: BaseException = exc
        while root.__cause__ is not None:
            root = root.__cause__
        said = [f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}" for e in dict.fromkeys([exc, root])]
        tries = f" after {retries.count + 1} attempts" if retries.count else ""
        raise ResourceError(
            f"dagster instance ({stack.instance.where()}): cannot open it{tries}: {redact('; '.join(said))[:400]}"
        ) from safe_cause(exc)
    finally:
        logging.getLogger().removeFilter(retries)


class _RetryCounter(logging.Filter):
    """Drops (and counts) dagster-postgres's "Retrying failed database connection" warnings."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Retrying failed database"):
            self.count += 1
            return False
        return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
