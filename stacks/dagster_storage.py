"""Dagster's SQLite event log, minus the engine and the connection it opens for every use.

Dagster's :class:`SqliteEventLogStorage` creates (and disposes) a SQLAlchemy engine on every
connection, and opens a new SQLite connection each time: about 24 per asset built, each one
reading the schema anew and, closing, checkpointing the write-ahead log. This subclass keeps one
engine per shard (a run's database, the index) with a small pool of open connections. That
halves the time Dagster spends per asset (50 ms to 25 ms of CPU per step on a chain of SQL
datasets, ``benchmarks/graph_chain.py``). Transactions, durability and the files on disk are
Dagster's own (WAL mode, which Dagster sets, lets other processes read and write beside open
connections), so the Dagster UI, ``dagster dev`` and an instance written by plain Dagster read
and write the same databases. Kept connections are closed, and the database set up again,
when its file was deleted or replaced by another process, and before a wipe.
``stacks.build.instance_config`` selects it for the local stack.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from sqlalchemy.pool import QueuePool

# A long-lived process (the UI) touches many runs: keep the engines (and their open
# connections, three files each) of the recent ones only.
_MAX_ENGINES = 32
_MAX_INODES = 4096


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


class SlipwayEventLogStorage(SqliteEventLogStorage):
    """:class:`SqliteEventLogStorage` that reuses one engine per shard."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        """The event log under ``base_dir`` (Dagster's layout: one database per run, plus an index)."""
        self._engines: OrderedDict[str, Any] = OrderedDict()  # before Dagster's init connects
        # The file each set-up shard was, when set up (bounded; a forgotten one is set up again).
        self._inodes: OrderedDict[str, int | None] = OrderedDict()
        self._pid = os.getpid()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> SlipwayEventLogStorage:  # noqa: D102
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Any:
        if self._pid != os.getpid():
            # A forked child: the parent's open connections are not its own to use or close.
            for inherited in self._engines.values():
                inherited.dispose(close=False)
            self._engines.clear()
            self._pid = os.getpid()
        engine = self._engines.get(shard)
        path = self.path_for_shard(shard)
        if shard in self._initialized_dbs and self._inodes.get(shard) != _inode(path):
            # Deleted or replaced by another process (a wipe) since it was set up: kept
            # connections would go on writing to the old file, unseen, and a new one would find
            # no tables. Start over on the file as it is now.
            if engine is not None:
                self._engines.pop(shard).dispose()
            self._initialized_dbs.discard(shard)
            engine = None
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            self._engines[shard] = engine
            while len(self._engines) > _MAX_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        if shard not in self._initialized_dbs:  # new, or wiped since (wipe() forgets it)
            self._initdb(engine)
            self._initialized_dbs.add(shard)
            self._inodes[shard] = _inode(path)
            while len(self._inodes) > _MAX_INODES:
                self._inodes.popitem(last=False)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Any]:
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    yield conn

    def _close_all(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        """Close every open connection before Dagster deletes the databases' files."""
        self._close_all()
        super().wipe()

    def dispose(self) -> None:  # noqa: D102
        super().dispose()
        self._close_all()
