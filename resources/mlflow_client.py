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

What each trick here buys, and what fails when an upgrade breaks it (figures: cold
``slipway run`` of the reference workload, ``benchmarks/mlflow_tricks.py --repeats 5`` on an
idle machine, median 13.92 s shipped; guards: ``tests/resources/test_mlflow_tricks.py``):

- the warm-up thread (:func:`prewarm`): 1.59 s (11%). Guarded: :func:`client` waits for it,
  returns what it built, builds once, and re-raises its error.
- MLflow's private ``_init_modules_to_packages_map`` (:func:`_warm_model_saving`): 0.30 s (2%),
  the scan of installed packages ``save_model`` would do after training. Guarded: the helper
  exists and fills the map ``save_model``'s requirement check reuses.
- MLflow's private ``_tracking_client.store`` and ``_get_registry_client().store`` (:func:`_build`,
  :func:`_create_whole`): not a speed trick; they create the schema inside the schema lock
  (a new database whole, under another name). Guarded: the tables exist when the lock is released.
- the alembic lock (:func:`_serialize_alembic`): not a speed trick; it makes the warm-up safe
  beside Dagster's own migrations. Guarded: alembic still keeps its context in a module global
  (else the lock can go), MLflow's migrations pass through the patched methods, and a second
  thread waits outside.
- A shorter thread switch interval during the warm-up was removed: it measured +0.09 s, inside
  the noise.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from resources.mlflow_store import opened, reach

_lock = threading.Lock()
_clients: dict[tuple[str, str], Any] = {}
_threads: dict[tuple[str, str], threading.Thread] = {}
_errors: dict[tuple[str, str], BaseException] = {}
# A store that could not be opened, and when: not tried again for FAILURE_MEMORY_SECONDS.
_failures: dict[tuple[str, str], tuple[float, BaseException]] = {}
FAILURE_MEMORY_SECONDS = 60.0


def own_environment() -> frozenset[str]:
    """The environment variables this module sets itself (defaults a user may override)."""
    return frozenset(
        {"MLFLOW_DISABLE_TELEMETRY", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "MLFLOW_ENABLE_ASYNC_LOGGING"}
        | set(_RETRY_SETTINGS)
    )


def _no_telemetry() -> None:
    # MLflow 3 sends usage telemetry by default. Nothing leaves a Slipway machine unasked; a user
    # who wants it can still set MLFLOW_DISABLE_TELEMETRY=false.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# A call to an MLflow server that does not answer is tried HTTP_RETRIES more times, waiting
# 0, 2, 4 s between tries (HTTP_BACKOFF doubling, plus up to 0.5 s of jitter), each try timing
# out after HTTP_TIMEOUT s. MLflow's defaults (7 retries, waits up to 120 s, 120 s timeout) kept
# a step silent for 250 s on a dead server. Users may still set MLflow's variables themselves.
HTTP_RETRIES = 3
HTTP_BACKOFF = 1
HTTP_TIMEOUT = 10
_RETRY_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": HTTP_RETRIES,
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": HTTP_BACKOFF,
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": 0.5,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": HTTP_TIMEOUT,
}


def retry_budget() -> tuple[int, float]:
    """(tries, the most seconds they can take) for one call to an MLflow server, as configured."""
    retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES))
    backoff = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", HTTP_BACKOFF))
    jitter = float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", 0.5))
    timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT))
    # urllib3 waits nothing before the first retry, then backoff * 2**(n-1) before the n-th.
    waits = sum(min(120.0, backoff * 2 ** (n - 1)) + jitter for n in range(2, retries + 1))
    return retries + 1, (retries + 1) * timeout + waits


class _RetryNotice(logging.Filter):
    """Say, in one line a person reads, that a call to the MLflow server is being retried.

    urllib3 logs ``Retrying (Retry(total=2, ...)) after connection broken by '...': /api/...``;
    this replaces it with the attempt number and the most the retries can take.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Retrying") or not isinstance(record.args, tuple) or len(record.args) != 3:
            return True
        retry, error, path = record.args
        tries, seconds = retry_budget()
        left = getattr(retry, "total", None)
        attempt = f"attempt {tries - left} of {tries}" if isinstance(left, int) else "retrying"
        reason = str(error).rpartition(": ")[2] or type(error).__name__
        logging.getLogger("slipway.progress").warning(
            "mlflow server: %s (%s); retrying, %s (gives up within %.0f s)",
            str(path).split("?")[0],
            reason,
            attempt,
            seconds,
        )
        return False


def _bounded_retries() -> None:
    for name, value in _RETRY_SETTINGS.items():
        os.environ.setdefault(name, str(value))
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RetryNotice) for f in urllib3_log.filters):
        urllib3_log.addFilter(_RetryNotice())


def _quiet() -> None:
    # MLflow prints "View run … at: <tracking URI>" to stdout when a run on a server ends: the
    # URI may hold a password, and the Dagster materialization already links the run.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # MLflow logs each database error with its traceback and SQL parameters before raising it;
    # the error itself reaches the user (one line, by the step or the CLI).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    # MLflow logs alembic migrations and a "creating experiment" line at INFO on first use.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def _build(key: tuple[str, str], saving: bool = False) -> Any:
    _no_telemetry()
    _bounded_retries()
    # A bare postgresql:// with the driver shipped; a database store reached (briefly) before MLflow tries.
    tracking_uri, registry_uri = opened(key[0]), opened(key[1]) if key[1] else ""
    for uri in dict.fromkeys([tracking_uri, registry_uri or tracking_uri]):
        reach(uri)
    from mlflow import MlflowClient

    _quiet()  # after the import: MLflow sets up its own logger on import

    # Touch both stores so the engine is created and the schema checked now, not mid-run.
    # Creating a new database's schema is not safe from two processes at once (MLflow's
    # migrations collide: "table ... already exists"), so it happens under a file lock.
    with schema_lock(tracking_uri, registry_uri or tracking_uri):
        for uri in {tracking_uri, registry_uri or tracking_uri}:
            _create_whole(uri)
        new = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)
        new._tracking_client.store  # noqa: B018
        new._get_registry_client().store  # noqa: B018
    if saving:  # a training is about to log a model (prewarm); a client built on demand may never do
        _warm_model_saving()
    return new


def _create_whole(uri: str) -> None:
    """Create a new SQLite MLflow database beside its path, then move it into place.

    Creating the schema runs some 60 migrations; cut short (a full disk, a kill), it leaves a
    database MLflow can never open again ("table ... already exists"). Built under another name
    and renamed when complete, the database is either whole or absent. The caller holds the
    database's schema lock.
    """
    path = _sqlite_path(uri)
    if path is None or path.exists():
        return
    from mlflow import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.creating-{os.getpid()}")
    try:
        store = MlflowClient(tracking_uri=f"sqlite:///{scratch}")._tracking_client.store
        store.engine.dispose()
        # A link, not a rename: it never replaces a database something else created meanwhile
        # (an `mlflow server` not started by Slipway, which takes no lock).
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
    finally:
        for leftover in (scratch, scratch.with_name(scratch.name + "-journal")):
            leftover.unlink(missing_ok=True)


def create_store(uri: str) -> None:
    """Create the SQLite MLflow database of ``uri`` if it is new: whole, under its schema lock.

    For a process other than this one that will open it (``mlflow server``, which would
    create it in place and take no lock). Other stores need nothing.
    """
    with schema_lock(uri):
        _create_whole(uri)


def _sqlite_path(uri: str) -> Path | None:
    """The file of a SQLite URI (None for other stores and in-memory databases)."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    return Path(unquote(database)).resolve()


def sqlite_lock_file(uri: str, name: str) -> Path | None:
    """A lock file ``name`` beside a SQLite database (one per database, however its URI is spelled)."""
    path = _sqlite_path(uri)
    if path is None:
        return None
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
    try:
        built = _build(key, saving=True)
    except BaseException as exc:  # re-raised on the caller's thread by client()
        _errors[key] = exc
        return
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
    failed = _failures.get(key)
    if failed is not None and time.monotonic() - failed[0] < FAILURE_MEMORY_SECONDS:
        # Reaching this store has just taken up to ~27 s (a database's tries) or ~47 s (a server's
        # retries): every other call of this run (reconcile, training, recovery) would wait as long again.
        raise failed[1]
    try:
        built = _build(key)
    except Exception as exc:
        _failures[key] = (time.monotonic(), exc)
        raise
    _failures.pop(key, None)
    with _lock:
        _clients[key] = built
    return built


#: See :func:`own_environment`.
OWN_ENVIRONMENT = own_environment()
