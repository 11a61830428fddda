"""Dagster's SQLite event log, minus the engine and the connection it opens for every use.

Dagster's :class:`SqliteEventLogStorage` creates (and disposes) a SQLAlchemy engine on every
connection, and opens a new SQLite connection each time: about 24 per asset built, each one
reading the schema anew and, closing, checkpointing the write-ahead log. This subclass keeps one
engine per shard (a run's database, the index) with a small pool of open connections. That
halves the time Dagster spends per asset (50 ms to 25 ms of CPU per step on a chain of SQL
datasets, ``benchmarks/graph_chain.py``). Transactions, durability and the files on disk are
Dagster's own (WAL mode, which Dagster sets, lets other processes read and write beside open
connections; a commit does not wait for the disk, :func:`_no_sync_per_commit`), so the Dagster
UI, ``dagster dev`` and an instance written by plain Dagster read and write the same databases.
Kept connections are closed, and the database set up again, when its file was deleted or
replaced by another process, and before a wipe.
A run's database is also set up without Dagster's alembic command (which loads every migration
script anew, ~80 ms a run): the same tables, WAL mode and head revision, stamped through
alembic's own :class:`MigrationContext` with the migration scripts read once per process
(``tests/stacks/test_dagster_storage.py`` holds the file to the one Dagster's set-up leaves).
``stacks.build.instance_config`` selects it for the local stack.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.pool import QueuePool

# A long-lived process (the UI) touches many runs: keep the engines (and their open
# connections, three files each) of the recent ones only.
_MAX_ENGINES = 32
_MAX_INODES = 4096


@functools.cache
def _migrations() -> Any:
    """Dagster's alembic scripts (for the event log), read once."""
    from alembic.script import ScriptDirectory
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster._core.storage.sql import get_alembic_config

    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


def _no_sync_per_commit(connection: Any, _record: Any) -> None:
    """Commit without waiting for the disk (``synchronous=NORMAL``): in WAL mode it is synced at checkpoints.

    A commit survives the process being killed (the OS has the write); only an OS crash or a power
    cut may lose the last ones, and what they recorded is then built again: the record is what
    the rule reads, and a build it does not hold is a build to do. Each event a run records is
    two commits (its run's database and the index): waiting for the disk at each was most of a
    batched partition's cost (``benchmarks/partitions.py``).
    """
    connection.execute("PRAGMA synchronous=NORMAL")


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
        self._tables: set[str] = set()  # tables the index is known to have (has_table)
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
            sqlalchemy_event.listen(engine, "connect", _no_sync_per_commit)
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

    def _initdb(self, engine: Any, for_index_shard: bool = False) -> None:
        """Set up a run's database as Dagster's ``_initdb`` does, without its alembic command.

        The index (set up once) is left to Dagster. Two processes setting up one file at once
        retry as Dagster's do: the loser finds it stamped.
        """
        if for_index_shard:
            super()._initdb(engine, for_index_shard=True)
            return
        import sqlalchemy as db
        from alembic.runtime.migration import MigrationContext
        from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
        from dagster._core.storage.sql import _alembic_lock, safe_commit

        for attempt in range(11):
            try:
                with engine.connect() as connection:
                    if MigrationContext.configure(connection).get_current_revision() is None:
                        SqlEventLogStorageMetadata.create_all(engine)
                        connection.execute(db.text("PRAGMA journal_mode=WAL;"))
                        with _alembic_lock:
                            MigrationContext.configure(connection).stamp(_migrations(), "head")
                        safe_commit(connection)
                return
            except (db.exc.DatabaseError, sqlite3.DatabaseError, sqlite3.OperationalError) as exc:
                message = str(exc)
                racing = (
                    "already exists" in message
                    or "database is locked" in message
                    or "UNIQUE constraint failed: alembic_version.version_num" in message
                )
                if not racing or attempt == 10:
                    raise
                time.sleep(0.2)

    def has_table(self, table_name: str) -> bool:
        """Whether the index has ``table_name``: Dagster asks at each event with tags, opening an engine each time.

        A table found stays found (migrations add tables, none drops one) until a wipe.
        """
        if table_name in self._tables:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables.add(table_name)
        return found

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
        self._tables.clear()
        super().wipe()

    def dispose(self) -> None:  # noqa: D102
        super().dispose()
        self._close_all()
