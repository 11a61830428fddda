"""Derived datasets: a DuckDB query or a Python function over other datasets' tables.

A query runs in an in-memory DuckDB database that holds the inputs, each registered under its
name (:func:`assets.schema.input_name`), and nothing else: reading files or the network from
SQL is disabled (a file read there would escape the observed sources, so new data in it
would go unseen), and so is DuckDB's habit of reading Python variables of the caller by name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from resources.errors import DataError, DefinitionError

_DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "python_enable_replacements": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def _message(exc: Exception, tables: list[str]) -> str:
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


_database: tuple[int, Any] | None = None
_database_lock = threading.Lock()


def _cursor() -> Any:
    """A new connection to this process's one in-memory DuckDB database (locked down, see above).

    Opening a DuckDB database costs about 10 ms, a connection to an open one well under 1 ms.
    Each query gets its own connection, closed after it, so the tables it registers are gone
    with it; the database's catalog is shared, which is safe because only a single SELECT is
    ever run (:func:`check_query`), and a SELECT creates nothing. A forked process opens its own.
    """
    import duckdb

    global _database
    with _database_lock:
        if _database is None or _database[0] != os.getpid():
            _database = (os.getpid(), duckdb.connect(config=_DUCKDB_CONFIG))
        return _database[1].cursor()


def check_query(query: str, where: str, connection: Any = None) -> None:
    """Parse ``query`` (no table needed): exactly one SELECT statement, else :class:`DefinitionError`."""
    import duckdb

    cursor = connection or _cursor()
    try:
        statements = cursor.extract_statements(query)
    except duckdb.Error as exc:
        raise DefinitionError(f"{where}: DuckDB rejected the query: {_message(exc, [])}") from None
    finally:
        if connection is None:
            cursor.close()
    if len(statements) != 1:
        raise DefinitionError(f"{where}: `sql` must be one query; found {len(statements)} statements")
    if statements[0].type != duckdb.StatementType.SELECT:
        kind = statements[0].type.name
        raise DefinitionError(f"{where}: `sql` must be a SELECT query (or WITH ... SELECT); found {kind}")


def run_query(query: str, inputs: Mapping[str, Any], where: str) -> Any:
    """Run ``query`` over ``inputs`` (name -> DataFrame) in DuckDB; the result as a pandas DataFrame.

    The query is checked again first (one SELECT): ``slipway validate`` may not have run.
    """
    import duckdb
    import pandas as pd

    for name, frame in inputs.items():
        if not isinstance(frame, pd.DataFrame):
            kind = type(frame).__name__
            raise DataError(f"{where}: input {name} is an object of type {kind}, not a table (a pandas DataFrame)")
    connection = _cursor()
    try:
        check_query(query, where, connection)
        for name, frame in inputs.items():
            connection.register(name, frame)
        try:
            return connection.execute(query).df()
        except duckdb.Error as exc:
            raise DataError(f"{where}: DuckDB rejected the query: {_message(exc, sorted(inputs))}") from None
    finally:
        connection.close()


def check_signature(fn: Callable[..., Any], path: str, names: list[str], where: str) -> None:
    """:class:`DefinitionError` unless ``fn`` can be called with ``names`` as keyword arguments."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read: the call itself will tell
        return
    try:
        signature.bind(**dict.fromkeys(names))
    except TypeError as exc:
        call = ", ".join(f"{n}=..." for n in names)
        raise DefinitionError(
            f"{where}: transform {path} is called with its inputs by name, {path.split(':')[-1]}({call}), "
            f"but it takes ({', '.join(signature.parameters)}): {exc}"
        ) from None


def run_transform(fn: Callable[..., Any], path: str, inputs: Mapping[str, Any], where: str) -> Any:
    """Call ``fn`` with each input as a keyword argument; it must return a DataFrame."""
    check_signature(fn, path, list(inputs), where)
    return call_transform(fn, path, where, **inputs)


def call_transform(fn: Callable[..., Any], path: str, where: str, /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as a table (:func:`require_frame`); what it raises names it, in one line.

    The first three parameters are positional only: an input may be called ``path`` or ``where``.
    """
    from resources.errors import SlipwayError
    from resources.redact import redact, safe_cause

    try:
        result = fn(*args, **kwargs)
    except SlipwayError:
        raise
    except Exception as exc:
        message = redact(str(exc).splitlines()[0]) if str(exc) else ""
        raise DataError(f"{where}: transform {path} raised {type(exc).__name__}: {message}") from safe_cause(exc)
    return require_frame(result, path, where)


def require_frame(result: Any, path: str, where: str) -> Any:
    """``result`` as a plain table (:func:`as_table`) when it is a DataFrame; else a :class:`DefinitionError`."""
    import pandas as pd

    from resources.artifacts import as_table

    if not isinstance(result, pd.DataFrame):
        kind = type(result).__name__
        raise DefinitionError(f"{where}: transform {path} returned an object of type {kind}, not a pandas DataFrame")
    try:
        return as_table(result)
    except DataError as exc:
        raise DataError(f"{where}: transform {path} returned a table whose {str(exc).removeprefix('its ')}") from exc


def missing_columns(frame: Any, wanted: Mapping[str, list[str]]) -> list[str]:
    """``"column 'x' (needed by ...)"`` for each column a check needs that ``frame`` lacks."""
    have = {str(c) for c in frame.columns}
    return [f"{column!r} (needed by {', '.join(users)})" for column, users in wanted.items() if column not in have]
