"""The tricks in ``resources/mlflow_client.py`` still do their work on the installed MLflow and alembic.

Each leans on something MLflow or alembic does not promise (a private attribute, a private
helper, a class alembic enters with ``with``); an upgrade that takes it away fails here rather
than quietly making runs slower or racy. ``benchmarks/mlflow_tricks.py`` measures what each buys.
No test trains a model; the slowest creates one MLflow schema in ``tmp_path`` (about a second).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resources import mlflow_client


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def fresh_warmups(monkeypatch: pytest.MonkeyPatch) -> None:
    """No client built and no warm-up in flight, whatever earlier tests left in the process."""
    monkeypatch.setattr(mlflow_client, "_clients", {})
    monkeypatch.setattr(mlflow_client, "_threads", {})
    monkeypatch.setattr(mlflow_client, "_errors", {})


class CountingLock:
    """An RLock that counts, to see from outside whether alembic went through the patched methods."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.acquired = 0
        self.released = 0

    def acquire(self) -> bool:
        self.lock.acquire()
        self.acquired += 1
        return True

    def release(self) -> None:
        self.released += 1
        self.lock.release()


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("select name from sqlite_master where type = 'table'")}


# (d) The schema, whole and inside the lock: MlflowClient's private `_tracking_client.store`
# and `_get_registry_client().store`.


def test_building_the_client_creates_the_whole_schema_inside_the_schema_lock(tmp_path, monkeypatch):
    # The real `_build` (its model-saving warm-up aside). The schema must exist when the schema
    # lock is released, or a second process would race to create it. It relies on MLflow's
    # private `_tracking_client.store` (used to build a new database under another name) and
    # `_get_registry_client().store`: renamed by an upgrade, this fails.
    monkeypatch.setattr(mlflow_client, "_warm_model_saving", lambda: None)
    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    at_release: list[set[str]] = []
    lock = mlflow_client.schema_lock

    @contextlib.contextmanager
    def watched(*uris: str) -> Iterator[None]:
        with lock(*uris):
            yield
            at_release.append(tables(database))

    monkeypatch.setattr(mlflow_client, "schema_lock", watched)

    built = mlflow_client._build((uri, ""))

    assert len(at_release) == 1
    assert {"experiments", "runs", "registered_models", "model_versions"} <= at_release[0]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch database left
    # The stores are cached per URI, so the engine opened here is the one the run uses later.
    assert built._tracking_client.store is built._tracking_client.store
    assert built._get_registry_client().store is built._get_registry_client().store
    assert built.search_experiments()[0].name == "Default"


# (d) The eager package map: mlflow.utils.requirements_utils._init_modules_to_packages_map.


@pytest.fixture
def package_map(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """MLflow's package map not built yet; returns a list that grows by one each time it is built."""
    from mlflow.utils import requirements_utils

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(requirements_utils, "_PACKAGES_TO_MODULES", None)
    scan = requirements_utils.importlib_metadata.packages_distributions
    builds: list[int] = []

    def counted() -> Any:
        builds.append(1)
        return scan()

    monkeypatch.setattr(requirements_utils.importlib_metadata, "packages_distributions", counted)
    return builds


def test_save_models_requirement_check_scans_the_installed_packages(package_map):
    # What the warm-up moves off the critical path: `mlflow.sklearn.save_model` passes the given
    # pip requirements through this function, which scans every installed distribution once.
    from mlflow.utils.environment import _process_pip_requirements

    _process_pip_requirements(None, pip_requirements=["scikit-learn"])

    assert package_map, "save_model's requirement check no longer scans the installed packages"


def test_the_private_helper_builds_the_map_the_requirement_check_reuses(package_map):
    # `_warm_model_saving` skips the helper quietly if it is gone; this makes the loss visible.
    from mlflow.utils import requirements_utils
    from mlflow.utils.environment import _process_pip_requirements

    requirements_utils._init_modules_to_packages_map()

    built = requirements_utils._MODULES_TO_PACKAGES
    assert isinstance(built, dict)
    assert "scikit-learn" in built["sklearn"]
    _process_pip_requirements(None, pip_requirements=["scikit-learn"])
    assert len(package_map) == 1, "save_model's check scanned the packages again: the warm-up buys nothing"
    assert requirements_utils._MODULES_TO_PACKAGES is built


# (c) The alembic lock: a correctness fix (`KeyError: 'script'` when MLflow's schema check and
# Dagster's run storage enter alembic at once), not a speed trick.


def enter_alembic() -> Any:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    script: Any = None  # entering reads no migration script
    return EnvironmentContext(Config(), script)


def test_alembic_still_shares_its_command_context_between_threads():
    # Why the lock exists: alembic installs the context as a module global, seen by every thread.
    # If this fails, alembic keeps it per thread now and `_serialize_alembic` can go.
    from alembic import context as alembic_context

    inside, release, seen = threading.Event(), threading.Event(), []

    def hold() -> None:
        with enter_alembic() as context:
            seen.append(context)
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        assert getattr(alembic_context, "_proxy", None) is seen[0]
    finally:
        release.set()
        holder.join(10)


def test_a_second_thread_waits_outside_alembic_until_the_first_leaves():
    mlflow_client._serialize_alembic()
    inside, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with enter_alembic():
            inside.set()
            release.wait(10)

    def second() -> None:
        with enter_alembic():
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    try:
        assert not second_in.wait(0.3), "two threads inside alembic's EnvironmentContext at once"
    finally:
        release.set()
    assert second_in.wait(10)
    for thread in threads:
        thread.join(10)


def test_mlflow_creates_its_schema_through_the_patched_enter(tmp_path, monkeypatch):
    # The lock is only as good as the methods it wraps: MLflow's migrations must still go through
    # `EnvironmentContext.__enter__`/`__exit__` (alembic's commands use it in a `with`).
    from mlflow import MlflowClient

    mlflow_client._serialize_alembic()
    lock = CountingLock()
    monkeypatch.setattr(mlflow_client, "_alembic_lock", lock)

    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # creates the schema

    assert lock.acquired >= 1
    assert lock.released == lock.acquired


def test_serializing_alembic_twice_wraps_it_once(monkeypatch):
    from alembic.runtime.environment import EnvironmentContext

    mlflow_client._serialize_alembic()
    enter, leave = EnvironmentContext.__enter__, EnvironmentContext.__exit__
    mlflow_client._serialize_alembic()
    mlflow_client._serialize_alembic()
    lock = CountingLock()
    monkeypatch.setattr(mlflow_client, "_alembic_lock", lock)

    with enter_alembic():
        pass

    assert (EnvironmentContext.__enter__, EnvironmentContext.__exit__) == (enter, leave)
    assert (lock.acquired, lock.released) == (1, 1)


# (a) The warm-up thread: `client()` waits for it and returns what it built.


def test_client_waits_for_the_warm_up_and_returns_what_it_built(fresh_warmups, monkeypatch):
    builds: list[str] = []

    def slow_build(key: tuple[str, str], saving: bool = False) -> Any:
        time.sleep(0.3)
        builds.append(threading.current_thread().name)
        return object()

    monkeypatch.setattr(mlflow_client, "_build", slow_build)

    mlflow_client.prewarm("sqlite:///x.db")
    mlflow_client.prewarm("sqlite:///x.db")  # idempotent: no second thread
    got = mlflow_client.client("sqlite:///x.db")

    assert builds == ["slipway-mlflow-prewarm"]
    assert got is mlflow_client._clients[("sqlite:///x.db", "")]
    assert mlflow_client.client("sqlite:///x.db") is got


def test_client_raises_the_warm_ups_error_on_the_callers_thread(fresh_warmups, monkeypatch):
    def fail(key: tuple[str, str], saving: bool = False) -> Any:
        time.sleep(0.1)
        raise RuntimeError("database is locked")

    monkeypatch.setattr(mlflow_client, "_build", fail)
    mlflow_client.prewarm("sqlite:///x.db")

    with pytest.raises(RuntimeError, match="database is locked"):
        mlflow_client.client("sqlite:///x.db")


def test_a_store_that_could_not_be_opened_is_not_tried_again_for_a_minute(monkeypatch):
    calls = []

    def failing(key):
        calls.append(key)
        raise RuntimeError("connection refused")

    monkeypatch.setattr(mlflow_client, "_build", failing)
    monkeypatch.setattr(mlflow_client, "_failures", {})
    key = ("postgresql://down/mlflow", "")
    for _ in range(3):
        with pytest.raises(RuntimeError, match="connection refused"):
            mlflow_client.client(*key)
    assert len(calls) == 1
    mlflow_client._failures[key] = (time.monotonic() - mlflow_client.FAILURE_MEMORY_SECONDS - 1, RuntimeError("old"))
    with pytest.raises(RuntimeError, match="connection refused"):
        mlflow_client.client(*key)
    assert len(calls) == 2  # a minute later it is tried again


def test_only_a_warm_up_before_training_prepares_model_saving(fresh_warmups, monkeypatch):
    # A client built on demand (a sweep's trial step, a registry lookup) logs no model: it does not
    # pay for the package scan; the warm-up a training starts does, beside the training.
    built: list[bool] = []
    monkeypatch.setattr(mlflow_client, "_build", lambda key, saving=False: built.append(saving) or object())
    mlflow_client.client("sqlite:///on-demand.db")
    mlflow_client.prewarm("sqlite:///training.db")
    mlflow_client.client("sqlite:///training.db")
    assert built == [False, True]
