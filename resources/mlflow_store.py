"""The store URI MLflow opens, and a database store reached briefly before MLflow opens it.

MLflow opens a database store (PostgreSQL, MySQL) through SQLAlchemy, which maps a bare
``postgresql://`` to psycopg 3 (not installed: ``No module named 'psycopg'``); Slipway ships
psycopg2. And MLflow's engine creation retries a database that is down 10 times over ~100 s
in silence, while libpq waits for ever on a server that accepts the connection and never
answers. So :func:`opened` names the driver (and a connect timeout), and :func:`reach`
connects first: a few short tries, each retry said on the progress log, then one line.

Stack YAML::

    experiment_tracker: {type: mlflow, tracking_uri: "postgresql://mlflow@db:5432/mlflow"}
"""

from __future__ import annotations

import logging
import time

# Tries of :func:`reach`, each timing out after DB_TIMEOUT s (also given to MLflow's engine, for
# the connections it makes later), waiting DB_BACKOFF s before the second, doubling.
DB_TRIES = 4
DB_TIMEOUT = 5
DB_BACKOFF = 1.0
# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the driver shipped is psycopg2.
_DRIVERS = {"postgresql": "postgresql+psycopg2", "postgres": "postgresql+psycopg2"}
_DATABASES = ("postgresql", "mysql", "mssql")


def store_uri(uri: str) -> str:
    """``uri`` as MLflow opens it: a bare ``postgresql://`` or ``postgres://`` with the driver shipped (psycopg2).

    What a message shows (redacted) is this form, so that it names the driver actually used.
    """
    from resources.redact import with_encoded_at

    scheme, sep, rest = uri.partition("://")
    driver = _DRIVERS.get(scheme.lower()) if sep else None
    return with_encoded_at(f"{driver}://{rest}" if driver else uri)


def opened(uri: str) -> str:
    """:func:`store_uri`, with a connect timeout for PostgreSQL unless the URI sets its own."""
    uri = store_uri(uri)
    if uri.startswith("postgresql") and "connect_timeout=" not in uri.partition("?")[2]:
        uri += ("&" if "?" in uri else "?") + f"connect_timeout={DB_TIMEOUT}"
    return uri


def db_give_up_within() -> float:
    """The most seconds :func:`reach` waits for a database store: every try timing out, plus the waits."""
    return DB_TRIES * DB_TIMEOUT + sum(DB_BACKOFF * 2**n for n in range(DB_TRIES - 1))


def reach(uri: str) -> None:
    """Connect once to the database of store ``uri`` (nothing for SQLite, files or servers), retrying briefly.

    Raises :class:`ResourceError` naming the attempts and the database's reason (never the password).
    """
    if uri.partition("://")[0].partition("+")[0].lower() not in _DATABASES:
        return
    import sqlalchemy as sa

    # What waiting can cure, as for database sources: a down, starting or slow server (not a
    # wrong password, a missing database or driver, which fail at once).
    from resources.database import _TRANSIENT, endpoint
    from resources.errors import ResourceError

    try:
        url = sa.make_url(uri)
    except sa.exc.ArgumentError:  # its message would repeat the URI, password and all
        raise ResourceError("not a database URL") from None
    shown = endpoint(url)
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise ResourceError(f"no database driver for {url.drivername!r} ({exc})") from None
    log = logging.getLogger("slipway.progress")
    started = time.monotonic()
    try:
        for attempt in range(1, DB_TRIES + 1):
            try:
                engine.connect().close()
                return
            except sa.exc.SQLAlchemyError as exc:
                reason = _database_says(getattr(exc, "orig", None) or exc)
                transient = isinstance(exc, sa.exc.OperationalError) and any(t in reason.lower() for t in _TRANSIENT)
                if not transient:
                    raise ResourceError(f"the database at {shown} refused: {reason}") from None
                if attempt == DB_TRIES:
                    seconds = time.monotonic() - started
                    tries = f"{DB_TRIES} attempts over {seconds:.0f} s"
                    raise ResourceError(f"the database at {shown} could not be reached in {tries}: {reason}") from None
                log.warning(
                    "mlflow database %s: %s; retrying, attempt %d of %d (gives up within %.0f s)",
                    shown,
                    reason,
                    attempt + 1,
                    DB_TRIES,
                    db_give_up_within(),
                )
                time.sleep(DB_BACKOFF * 2 ** (attempt - 1))
    finally:
        engine.dispose()


def _database_says(exc: BaseException) -> str:
    """The database's reason, first line, without libpq's ``connection to server at "h", port p failed:``."""
    from resources.redact import redact

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = redact(lines[0]) if lines else type(exc).__name__
    head, found, said = first.partition(" failed: ")
    return said.removeprefix("FATAL:").strip() if found and head.startswith("connection to server") else first
