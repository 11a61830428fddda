"""SQL over tables: the :class:`QueryEngine` role and its DuckDB implementation.

A derived dataset's ``sql`` runs in an in-memory DuckDB database that holds its inputs, each
registered under its name, and nothing else: reading files or the network from SQL is disabled
(a file read there would escape the observed sources, so new data in it would go unseen), and
so is DuckDB's habit of reading Python variables of the caller by name. Every query has a
memory limit and a time limit (the stack's, or the dataset's own ``limits``), and is stopped,
in one line naming both, when it goes past either.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import dagster as dg

from resources.errors import DataError, DefinitionError
from resources.settings import DuckdbEngineSettings

_DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "python_enable_replacements": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


class QueryEngine(dg.ConfigurableResource, ABC):
    """Runs one SELECT over named input tables, within a memory and a time limit."""

    @abstractmethod
    def run(
        self,
        query: str,
        inputs: Mapping[str, Any],
        where: str,
        memory_limit: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        """The result of ``query`` over ``inputs`` (name -> DataFrame) as a pandas DataFrame.

        ``memory_limit`` and ``timeout_seconds`` replace the engine's own for this query. A query
        that goes past either is stopped with a :class:`DataError` naming the limit.
        """


class DuckdbEngine(QueryEngine, DuckdbEngineSettings):
    """DuckDB in this process, locked down (no files, no network, no caller's variables).

    Stack YAML::

        query_engine: {type: duckdb, memory_limit: 50%, timeout_seconds: 900}
    """

    def run(  # noqa: D102
        self,
        query: str,
        inputs: Mapping[str, Any],
        where: str,
        memory_limit: str | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        import duckdb
        import pandas as pd

        for name, frame in inputs.items():
            if not isinstance(frame, pd.DataFrame):
                kind = type(frame).__name__
                raise DataError(f"{where}: input {name} is an object of type {kind}, not a table (a pandas DataFrame)")
        memory = memory_limit or self.memory_limit
        seconds = timeout_seconds or self.timeout_seconds
        connection = cursor(memory)
        # DuckDB has no statement timeout: a timer interrupts the connection (from another
        # thread, which its API allows) when the query runs past the limit.
        timer = threading.Timer(seconds, connection.interrupt)
        try:
            check_query(query, where, connection)
            for name, frame in inputs.items():
                connection.register(name, frame)
            timer.start()
            try:
                return connection.execute(query).df()
            except duckdb.InterruptException:
                raise DataError(
                    f"{where}: the query ran past its time limit ({seconds:g} s) and was stopped; raise "
                    "`limits.timeout` on the dataset, or `query_engine.timeout_seconds` in the stack"
                ) from None
            except duckdb.OutOfMemoryException:
                raise DataError(
                    f"{where}: the query needed more than its memory limit ({memory}) and was stopped; raise "
                    "`limits.memory` on the dataset, or `query_engine.memory_limit` in the stack"
                ) from None
            except duckdb.Error as exc:
                raise DataError(f"{where}: DuckDB rejected the query: {message(exc, sorted(inputs))}") from None
        finally:
            timer.cancel()
            connection.close()


_databases: dict[tuple[int, str | None], Any] = {}
_databases_lock = threading.Lock()


def cursor(memory_limit: str | None = None) -> Any:
    """A new connection to this process's in-memory DuckDB database of that memory limit (locked down).

    Opening a DuckDB database costs about 10 ms, a connection to an open one well under 1 ms.
    Each query gets its own connection, closed after it, so the tables it registers are gone
    with it; the database's catalog is shared, which is safe because only a single SELECT is
    ever run (:func:`check_query`), and a SELECT creates nothing. The memory limit is the
    database's, so each limit has a database of its own. A forked process opens its own.
    """
    import duckdb

    key = (os.getpid(), memory_limit)
    with _databases_lock:
        if key not in _databases:
            config = {**_DUCKDB_CONFIG, **({"memory_limit": memory_limit} if memory_limit else {})}
            _databases[key] = duckdb.connect(config=config)
        return _databases[key].cursor()


def check_query(query: str, where: str, connection: Any = None) -> None:
    """Parse ``query`` (no table needed): exactly one SELECT statement, else :class:`DefinitionError`."""
    import duckdb

    parser = connection or cursor()
    try:
        statements = parser.extract_statements(query)
    except duckdb.Error as exc:
        raise DefinitionError(f"{where}: DuckDB rejected the query: {message(exc, [])}") from None
    finally:
        if connection is None:
            parser.close()
    if len(statements) != 1:
        raise DefinitionError(f"{where}: `sql` must be one query; found {len(statements)} statements")
    if statements[0].type != duckdb.StatementType.SELECT:
        kind = statements[0].type.name
        raise DefinitionError(f"{where}: `sql` must be a SELECT query (or WITH ... SELECT); found {kind}")


def message(exc: Exception, tables: list[str]) -> str:
    """DuckDB's own message in one line (its hints kept, its caret drawing dropped)."""
    lines = []
    for line in str(exc).splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    text = " ".join(lines) or type(exc).__name__
    if text.startswith("Catalog Error: Table with name"):
        # DuckDB's did-you-mean names its own catalog tables; the query can read only the inputs.
        text = text.split("!")[0] + f"! (the query reads its inputs by name: {', '.join(tables)})"
    return text
