"""Dagster's SQLite event log, minus the SQLAlchemy engine it builds for every event.

Dagster's :class:`SqliteEventLogStorage` creates (and disposes) a SQLAlchemy engine on every
connection: about four per event, six events per asset. This subclass keeps one engine per
shard (a run's database, the index) and changes nothing else: connections are still opened per
use (``NullPool``), transactions, durability and the files on disk are Dagster's own, so the
Dagster UI, ``dagster dev`` and an instance written by plain Dagster read and write the same
databases. ``stacks.build.instance_config`` selects it for the local stack.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from sqlalchemy.pool import NullPool

# A long-lived process (the UI) touches many runs: keep the engines of the recent ones only.
_MAX_ENGINES = 64


class SlipwayEventLogStorage(SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` that reuses one engine per shard."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        """The event log under ``base_dir`` (Dagster's layout: one database per run, plus an index)."""
        self._engines: OrderedDict[str, Any] = OrderedDict()  # before Dagster's init connects
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> SlipwayEventLogStorage:  # noqa: D102
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Any:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            self._engines[shard] = engine
            while len(self._engines) > _MAX_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        if shard not in self._initialized_dbs:  # new, or wiped since (wipe() forgets it)
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    yield conn

    def dispose(self) -> None:  # noqa: D102
        super().dispose()
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
