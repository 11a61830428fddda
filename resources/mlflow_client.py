"""One ``MlflowClient`` per tracking URI per process, started early in the background.

Importing MLflow and creating a client against a SQLite store costs over a second (imports,
engine, schema check, the model-saving machinery). :func:`prewarm` starts that on a daemon
thread when a model starts training, so it runs on the other core while training holds only
brief moments of the GIL, instead of after it. :func:`client` returns the same object,
waiting for the thread if needed.

The rule that makes this safe: while a warm-up thread is alive, no other thread imports any
MLflow module. MLflow's generated protobuf modules are not safe to import from two threads at
once (``Couldn't build proto file into descriptor pool: Depends on file 'databricks.proto'``
failed every run of a model that trained in milliseconds), so code that imports MLflow calls
:func:`client` (or :func:`ready`) first, which waits for every warm-up in flight.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

_lock = threading.Lock()
_clients: dict[tuple[str, str], Any] = {}
_threads: dict[tuple[str, str], threading.Thread] = {}
_errors: dict[tuple[str, str], BaseException] = {}


def _no_telemetry() -> None:
    # MLflow 3 sends usage telemetry by default. Nothing leaves a Slipway machine unasked; a user
    # who wants it can still set MLFLOW_DISABLE_TELEMETRY=false.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _quiet() -> None:
    # MLflow logs alembic migrations and a "creating experiment" line at INFO on first use.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def _build(key: tuple[str, str]) -> Any:
    _no_telemetry()
    from mlflow import MlflowClient

    _quiet()  # after the import: MLflow sets up its own logger on import

    tracking_uri, registry_uri = key
    # Touch both stores so the engine is created and the schema checked now, not mid-run.
    # Creating a new database's schema is not safe from two processes at once (MLflow's
    # migrations collide: "table ... already exists"), so it happens under a file lock.
    with schema_lock(tracking_uri, registry_uri or tracking_uri):
        new = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
        new._tracking_client.store  # noqa: B018
        new._get_registry_client().store  # noqa: B018
    _warm_model_saving()
    return new


def sqlite_lock_file(uri: str, name: str) -> Path | None:
    """A lock file ``name`` beside a SQLite database (one per database, however its URI is spelled)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    path = Path(unquote(database)).resolve()
    return path.with_name(f"{path.name}.locks") / f"{name}.lock"


@contextlib.contextmanager
def schema_lock(*uris: str) -> Iterator[None]:
    """Hold the schema lock of each SQLite store among ``uris`` (others need none).

    Each database's lock is taken once, in a fixed order (an ``flock`` taken twice on one file
    by one process would wait for itself); the kernel frees them if the holder dies.
    """
    paths = sorted({path for uri in uris if (path := sqlite_lock_file(uri, "_schema")) is not None})
    with contextlib.ExitStack() as stack:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(path.open("a+"))
            fcntl.flock(handle, fcntl.LOCK_EX)
            stack.callback(fcntl.flock, handle, fcntl.LOCK_UN)
        yield


def _warm_model_saving() -> None:
    """Import what logging a scikit-learn model needs, and build MLflow's package map.

    ``save_model`` checks the given pip requirements against a module-to-distribution map it
    builds on first use by scanning every installed distribution (~0.6 s); built here, on the
    background thread, it overlaps with training instead of following it.
    """
    import mlflow.models  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    from mlflow.utils import requirements_utils

    init = getattr(requirements_utils, "_init_modules_to_packages_map", None)
    if init is not None:  # a private helper: skip quietly if a later MLflow drops it
        init()


def _warm(key: tuple[str, str]) -> None:
    # While this thread imports and connects, the main thread is training: it gives up the
    # GIL for each tree and must win it back between trees. A shorter switch interval hands
    # it back sooner (default 5 ms), so the warm-up does not stretch the training.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        built = _build(key)
    except BaseException as exc:  # re-raised on the caller's thread by client()
        _errors[key] = exc
        return
    finally:
        sys.setswitchinterval(interval)
    with _lock:
        _clients[key] = built


_alembic_lock = threading.RLock()


def _serialize_alembic() -> None:
    """Let one thread at a time inside an alembic ``EnvironmentContext``.

    MLflow creates or upgrades its schema with alembic commands, and Dagster stamps each new
    run's event-log database with them too. Alembic installs its command context as a module
    global (``alembic.context``) on entry and deletes it on exit, so two threads inside it at
    once break each other (``KeyError: 'script'``). Holding a lock for the duration of the
    block makes the background client safe to build while a Dagster run starts.
    """
    from alembic.runtime.environment import EnvironmentContext

    if getattr(EnvironmentContext, "_slipway_serialized", False):
        return
    enter, leave = EnvironmentContext.__enter__, EnvironmentContext.__exit__

    def locked_enter(self: Any) -> Any:
        _alembic_lock.acquire()
        try:
            return enter(self)
        except BaseException:
            _alembic_lock.release()
            raise

    def locked_exit(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            leave(self, *args, **kwargs)
        finally:
            _alembic_lock.release()

    EnvironmentContext.__enter__ = locked_enter  # type: ignore[method-assign]
    EnvironmentContext.__exit__ = locked_exit  # type: ignore[method-assign]
    setattr(EnvironmentContext, "_slipway_serialized", True)  # noqa: B010


def prewarm(tracking_uri: str, registry_uri: str = "") -> None:
    """Start building the client for ``tracking_uri`` on a background thread (idempotent)."""
    key = (tracking_uri, registry_uri)
    _serialize_alembic()
    with _lock:
        if key in _clients or key in _threads:
            return
        thread = threading.Thread(target=_warm, args=(key,), name="slipway-mlflow-prewarm", daemon=True)
        _threads[key] = thread
    thread.start()


def ready() -> None:
    """Wait for every warm-up thread in flight; call before importing an MLflow module."""
    with _lock:
        threads = list(_threads.values())
    for thread in threads:
        thread.join()


def client(tracking_uri: str, registry_uri: str = "") -> Any:
    """The process-wide ``MlflowClient`` for ``tracking_uri`` (MLflow may be imported after this)."""
    key = (tracking_uri, registry_uri)
    ready()
    with _lock:
        if key in _clients:
            return _clients[key]
        error = _errors.pop(key, None)
        _threads.pop(key, None)
    if error is not None:
        raise error
    built = _build(key)
    with _lock:
        _clients[key] = built
    return built
