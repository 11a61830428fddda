"""Database sources: a query read through SQLAlchemy, with the URL only from the environment.

The URL names a database and often holds a password, so YAML names the environment variable
that holds it (``connection: CRM_DATABASE_URL``), and nothing here shows more of it than the
variable's name, the host and the port. Connecting is retried a bounded number of times,
each retry announced on the progress log; a query the database rejects is not retried.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from resources.errors import DataError, DefinitionError, ResourceError
from resources.redact import with_encoded_at

CONNECT_TRIES = 4
CONNECT_TIMEOUT = 5  # seconds per attempt
BACKOFF = 1.0  # seconds before the second attempt, doubling after
# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the driver shipped is psycopg2.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2", "postgres": "postgresql+psycopg2"}
# The backends whose sessions can be made read-only before the query runs (see :func:`connect`).
READ_ONLY_BACKENDS = ("postgresql", "sqlite")
_SESSION_OPTIONS = "-c default_transaction_read_only=on -c standard_conforming_strings=on"

T = TypeVar("T")


def give_up_within() -> float:
    """The most seconds connecting can take before it fails: every attempt timing out, plus the waits."""
    return CONNECT_TRIES * CONNECT_TIMEOUT + sum(BACKOFF * 2**n for n in range(CONNECT_TRIES - 1))


def url_from(variable: str, where: str) -> str:
    """The URL in environment variable ``variable``; :class:`DefinitionError` naming it when unset."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise DefinitionError(
            f"{where}: environment variable {variable} is not set (or is empty); it must hold the database URL "
            "(such as postgresql://host:5432/name, with the user and password in it)"
        )
    return value


def endpoint(url: Any) -> str:
    """``host:port/database`` of a SQLAlchemy URL: what a message may show (never the password)."""
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    database = f"/{url.database}" if url.database and url.get_backend_name() != "sqlite" else ""
    return f"{host}{port}{database}" if url.get_backend_name() != "sqlite" else f"sqlite {url.database}"


def backend_of(variable: str) -> str | None:
    """The backend (``postgresql``, ``sqlite``, ...) of the URL in ``variable``; None when unset or not a URL."""
    import sqlalchemy as sa

    text = os.environ.get(variable, "").strip()
    try:
        return sa.make_url(text).get_backend_name() if text else None
    except sa.exc.ArgumentError:
        return None


def _engine(variable: str, where: str) -> tuple[Any, str]:
    import sqlalchemy as sa

    text = with_encoded_at(url_from(variable, where))
    try:
        url = sa.make_url(text)
    except sa.exc.ArgumentError:
        # The message would repeat the value, password and all.
        raise DefinitionError(f"{where}: {variable} does not hold a database URL") from None
    backend = url.get_backend_name()
    if backend not in READ_ONLY_BACKENDS:
        raise DefinitionError(
            f"{where}: {variable}: database sources read PostgreSQL or SQLite (this URL is {backend}); "
            "Slipway cannot promise a read-only session elsewhere"
        )
    if url.drivername in _DEFAULT_DRIVERS:
        url = url.set(drivername=_DEFAULT_DRIVERS[url.drivername])
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
        # Read-only from the session's first statement, set in the startup packet (it outranks the
        # role's and the database's own settings), after any options the URL gives. Standard
        # strings, as the parser that counted the statements (pglast) reads them.
        given = url.query.get("options")
        given = " ".join(given) if isinstance(given, tuple) else (given or "")
        connect_args["options"] = f"{given} {_SESSION_OPTIONS}".strip()
    try:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise DefinitionError(f"{where}: {variable}: no database driver for {url.drivername!r} ({exc})") from None
    return engine, endpoint(url)


# What waiting can cure: the server is down, starting, or the network is slow. A wrong password,
# a database that does not exist or a bad option fails at once.
_TRANSIENT = (
    "connection refused",
    "timeout expired",
    "timed out",
    "could not connect",
    "no route to host",
    "network is unreachable",
    "the database system is starting up",
    "the database system is shutting down",
    "server closed the connection unexpectedly",
    "could not translate host name",
    "too many connections",
)


@contextmanager
def connect(variable: str, where: str) -> Iterator[Any]:
    """A read-only connection to the database in ``variable``, retried while it cannot be reached.

    On PostgreSQL every transaction of the session is read-only from its first statement (a
    connection option, which a query cannot undo: only one statement ever runs, see
    :func:`check_query`); on SQLite ``query_only`` is on. Nothing is committed. A role that
    could write anyway (a superuser, or one with write grants) is said once per process.
    """
    engine, shown = _engine(variable, where)
    try:
        connection = _retrying(engine.connect, variable, shown, where)
        try:
            backend = engine.url.get_backend_name()
            if backend == "postgresql":
                _say_if_it_could_write(connection, variable, shown)
            elif backend == "sqlite":
                connection.exec_driver_sql("PRAGMA query_only = ON")
            yield connection
        finally:
            connection.close()  # never committed: rolled back
    finally:
        engine.dispose()


_warned: set[tuple[str, str, str]] = set()
# The role's name, whether it is a superuser, and (otherwise) the tables it may write to.
_ROLE_QUERY = """
select r.rolname, r.rolsuper, current_setting('transaction_read_only'),
       case when r.rolsuper then null else array(
         select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p') and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%'
           and has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
         order by 1) end
from pg_roles r where r.rolname = current_user
"""


def _say_if_it_could_write(connection: Any, variable: str, shown: str) -> None:
    """Check the session is read-only; warn (once) when the URL's role is a superuser or can write."""
    import sqlalchemy as sa

    try:
        role, superuser, read_only, writable = connection.execute(sa.text(_ROLE_QUERY)).one()
    except sa.exc.SQLAlchemyError as exc:
        raise _failed(exc, f"database {shown} ({variable})") from None
    finally:
        connection.rollback()
    if read_only != "on":  # the startup option was not applied: nothing may run
        raise ResourceError(f"database {shown} ({variable}): the session could not be made read-only")
    if (variable, shown, role) in _warned or not (superuser or writable):
        return
    _warned.add((variable, shown, role))
    if superuser:
        said = f"the role {role!r} is a superuser"
    else:
        names = ", ".join(writable[:3]) + (", ..." if len(writable) > 3 else "")
        said = f"the role {role!r} can write to {len(writable)} table{'s' if len(writable) > 1 else ''} ({names})"
    logging.getLogger("slipway.progress").warning(
        "database %s (%s): %s; Slipway runs one statement in a read-only session, but the safe source is a "
        "role that can only read (GRANT SELECT)",
        shown,
        variable,
        said,
    )


def _retrying(call: Callable[[], T], variable: str, shown: str, where: str) -> T:
    import sqlalchemy as sa

    log = logging.getLogger("slipway.progress")
    for attempt in range(1, CONNECT_TRIES + 1):
        try:
            return call()
        except sa.exc.SQLAlchemyError as exc:
            reason = _first_line(getattr(exc, "orig", None) or exc)
            transient = isinstance(exc, sa.exc.OperationalError) and any(t in reason.lower() for t in _TRANSIENT)
            if not transient:
                raise ResourceError(
                    f"{where}: cannot connect to the database at {shown} ({variable}): {_server_says(reason)}"
                ) from None
            if attempt == CONNECT_TRIES:
                raise ResourceError(
                    f"{where}: cannot connect to the database at {shown} ({variable}) after {CONNECT_TRIES} "
                    f"attempts: {reason}"
                ) from None
            log.warning(
                "database %s (%s): %s; retrying, attempt %d of %d (gives up within %.0f s)",
                shown,
                variable,
                reason,
                attempt + 1,
                CONNECT_TRIES,
                give_up_within(),
            )
            time.sleep(BACKOFF * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _server_says(reason: str) -> str:
    """The server's words of libpq's ``connection to server at "h", port p failed: FATAL: ...``."""
    head, found, said = reason.partition(" failed: ")
    return said if found and head.startswith("connection to server") else reason


def _first_line(exc: BaseException | None) -> str:
    """The database's own message, first line, with any URL's password hidden."""
    from resources.redact import redact

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(lines[0]) if lines else type(exc).__name__


# What a refused statement is called, by pglast's node type (others: the type without "Stmt").
_STATEMENT_KINDS = {
    "VariableSetStmt": "SET",
    "VariableShowStmt": "SHOW",
    "TransactionStmt": "a transaction command",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "ExplainStmt": "EXPLAIN",
    "CopyStmt": "COPY",
    "CreateTableAsStmt": "CREATE TABLE AS",
}
_NOT_A_QUERY = "`sql` of a database source must be a query (SELECT or WITH ... SELECT)"


def check_query(query: str, where: str, variable: str | None = None) -> None:
    """A database source reads: exactly one statement, a query (:class:`DefinitionError` otherwise).

    On PostgreSQL (the backend of the URL in ``variable``, or assumed when it is unset) the
    query is parsed by PostgreSQL's own parser (pglast, libpg_query) and must be a single
    SELECT: joined statements never reach the server, however they are hidden in strings,
    identifiers or comments, since the server is told to read strings as that parser does.
    When the URL is unknown and the parser refuses the query (it may be SQLite's dialect),
    only its first word is checked here; :func:`read` checks again with the backend known.
    On SQLite the driver itself runs one statement at most.
    """
    backend = backend_of(variable) if variable else None
    if backend in (None, "postgresql"):
        from pglast import parser

        try:
            statements = parser.parse_sql(query)
        except parser.ParseError as exc:
            if backend == "postgresql":
                raise DefinitionError(f"{where}: PostgreSQL cannot parse `sql`: {exc.args[0]}") from None
        else:
            _one_select(statements, where)
            return
    _first_word(query, where)


def _one_select(statements: Any, where: str) -> None:
    if len(statements) != 1:
        raise DefinitionError(f"{where}: `sql` of a database source must be one statement; found {len(statements)}")
    kind = type(statements[0].stmt).__name__
    if kind != "SelectStmt":
        shown = _STATEMENT_KINDS.get(kind, kind.removesuffix("Stmt").upper())
        raise DefinitionError(f"{where}: {_NOT_A_QUERY}; found {shown}")
    if statements[0].stmt.intoClause is not None:
        raise DefinitionError(f"{where}: {_NOT_A_QUERY}; found SELECT INTO, which creates a table")


def _first_word(query: str, where: str) -> None:
    text = query
    while True:  # skip leading comments
        text = text.lstrip()
        if text.startswith("--"):
            text = text.partition("\n")[2]
        elif text.startswith("/*"):
            text = text.partition("*/")[2]
        else:
            break
    first = text.split(None, 1)[0].lower() if text.split() else ""
    if first not in ("select", "with", "values", "("):
        raise DefinitionError(f"{where}: {_NOT_A_QUERY}")


def _failed(exc: Exception, where: str) -> Exception:
    """One line for a SQLAlchemy error while running a query: the database's own words."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.ResourceClosedError):
        return DataError(f"{where}: `sql` returned no rows to read (is it a query?)")
    if isinstance(exc, sa.exc.DBAPIError) and (exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError)):
        return ResourceError(f"{where}: the database connection failed: {_first_line(exc.orig)}")
    reason = _first_line(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc)
    if "one statement at a time" in reason:  # SQLite's driver, on joined statements
        return DefinitionError(f"{where}: `sql` of a database source must be one statement")
    return DataError(f"{where}: the database rejected the query: {reason}")


def read(variable: str, query: str, where: str) -> Any:
    """The result of ``query`` as a pandas DataFrame; a rejected query is a :class:`DataError`."""
    import pandas as pd
    import sqlalchemy as sa

    check_query(query, where, variable)
    with connect(variable, where) as connection:
        try:
            frame = pd.read_sql_query(sa.text(query), connection)
        except sa.exc.SQLAlchemyError as exc:
            raise _failed(exc, where) from None
        except pd.errors.DatabaseError as exc:  # pandas 3 wraps the driver's error in its own
            cause = exc.__cause__ if isinstance(exc.__cause__, sa.exc.SQLAlchemyError) else exc
            raise _failed(cause, where) from None
    if len(frame) == 0:
        raise DataError(f"{where}: the query returned no rows")
    return frame


def fingerprint(variable: str, query: str, where: str) -> tuple[str, int]:
    """A hash of the rows ``query`` returns, in any order, and their count, read without building a table.

    Rows are streamed; each is hashed as the text of its values (``repr``, which tells ``1`` from
    ``'1'`` and ``1.0``; bytes by their content), and the row hashes are added up, so the order
    the database returns them in (it promises none without ``ORDER BY``) does not count, and a
    changed, added or removed row does.
    """
    import sqlalchemy as sa

    check_query(query, where, variable)
    low = high = 0
    rows = 0
    with connect(variable, where) as connection:
        try:
            result = connection.execution_options(stream_results=True).execute(sa.text(query))
            columns = repr(tuple(result.keys()))
            for chunk in result.partitions(10_000):
                for row in chunk:
                    values = tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                    digest = hashlib.blake2b(repr(values).encode(), digest_size=16).digest()
                    low = (low + int.from_bytes(digest[:8], "big")) % 2**64
                    high = (high + int.from_bytes(digest[8:], "big")) % 2**64
                rows += len(chunk)
        except sa.exc.SQLAlchemyError as exc:
            raise _failed(exc, where) from None
    total = hashlib.blake2b(f"{columns}\0{rows}\0{low}\0{high}".encode(), digest_size=12)
    return total.hexdigest(), rows
