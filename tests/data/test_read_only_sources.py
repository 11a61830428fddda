"""A database source only ever reads: one statement, in a session that is read-only from its start.

Against the machine's PostgreSQL (a scratch database per test). The attacks are those a hostile
probe ran against the database-source path: statements joined after a harmless SELECT, hidden
from a naive splitter by PostgreSQL's own lexical rules, through `sql` and `observe` alike.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import psycopg2
import pytest
from services import PG, query, scratch_databases

from definitions.cli.runner import run
from resources import database
from resources.errors import DataError, DefinitionError

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow


@pytest.fixture
def victim(monkeypatch) -> str:
    """A scratch database with table ``victim`` (3 rows); its URL (as the superuser) in SHOP_DB_URL."""
    with scratch_databases("victim") as made:
        name = made["victim"]
        with psycopg2.connect(dbname=name, **PG) as connection, connection.cursor() as cursor:
            cursor.execute("create table victim (id int, plan text)")
            cursor.execute("insert into victim values (1, 'basic'), (2, 'premium'), (3, 'basic')")
        monkeypatch.setenv("SHOP_DB_URL", f"postgresql://postgres@127.0.0.1:5432/{name}")
        yield name


def _untouched(name: str) -> None:
    assert query(name, "select count(*) from victim") == [(3,)]
    tables = query(name, "select tablename from pg_tables where schemaname = 'public' order by 1")
    assert tables == [("victim",)]


ATTACKS = {
    "commit-delete": ("select 1 as a; commit; delete from victim", 3),
    "commit-create": ("select 1 as a; commit; create table made (a int)", 3),
    "plain-delete": ("select 1 as a; delete from victim", 2),
    "no-spaces": ("select 1 as a;commit;delete from victim;", 3),
    # `a$x$` is an identifier (a `$` may follow the first letter); `$x$` does not open a string here.
    "dollar-in-identifier": ("select 1 as a$x$; commit; delete from victim; select 1 as b$x$", 4),
    # Backslash is not an escape in a standard string: the string ends at `\'`.
    "backslash-quote": ("select 'a\\'; commit; delete from victim; --' as b", 3),
    # An E'' string does take backslash escapes, but `namE'` is a type name and a standard string.
    "identifier-then-quote": ("select namE'\\'; commit; delete from victim; --'", 3),
    "comment-hides-nothing": ("select 1 /* ; */ as a; commit; delete from victim -- ;", 3),
}


@pytest.mark.parametrize(("attack", "found"), ATTACKS.values(), ids=ATTACKS.keys())
def test_joined_statements_are_refused_before_anything_reaches_the_server(victim, attack, found):
    expected = f"here: `sql` of a database source must be one statement; found {found}"
    with pytest.raises(DefinitionError) as info:
        database.read("SHOP_DB_URL", attack, "here")
    assert str(info.value) == expected
    with pytest.raises(DefinitionError) as info:
        database.fingerprint("SHOP_DB_URL", attack, "here")  # an `observe:` query is read the same way
    assert str(info.value) == expected
    _untouched(victim)


def test_a_shell_command_through_copy_to_program_never_runs(victim, tmp_path):
    marker = tmp_path / "pwned"
    attack = f"select 1 as a; commit; copy (select 1) to program 'touch {marker}'"
    for call in (database.read, database.fingerprint):
        with pytest.raises(DefinitionError, match="must be one statement; found 3"):
            call("SHOP_DB_URL", attack, "here")
    assert not marker.exists()


def test_semicolons_inside_strings_identifiers_and_comments_are_one_statement(victim):
    sql = "select 'a;b' as x, $tag$c;d$tag$ as y, E'e\\';f' as z, 1 as \"w;\" -- a comment; here\n;"
    frame = database.read("SHOP_DB_URL", sql, "here")
    assert frame.to_dict("records") == [{"x": "a;b", "y": "c;d", "z": "e';f", "w;": 1}]
    assert database.fingerprint("SHOP_DB_URL", sql, "here")[1] == 1


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("explain analyze delete from victim", "EXPLAIN"),
        ("copy victim to stdout", "COPY"),
        ("set default_transaction_read_only = off", "SET"),
    ],
)
def test_a_statement_that_is_not_a_query_is_refused_by_its_kind(victim, sql, kind):
    with pytest.raises(DefinitionError) as info:
        database.check_query(sql, "here")
    assert (
        str(info.value) == f"here: `sql` of a database source must be a query (SELECT or WITH ... SELECT); found {kind}"
    )


def test_the_session_is_read_only_from_its_first_statement(victim):
    """Even a string that reached the server unchecked could not write: the option is set on connecting."""
    import sqlalchemy as sa

    with database.connect("SHOP_DB_URL", "here") as connection:
        assert connection.exec_driver_sql("show default_transaction_read_only").scalar() == "on"
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            connection.exec_driver_sql("select 1; commit; delete from victim")
    _untouched(victim)


def test_the_run_of_an_observed_source_with_a_write_stops_with_one_line(
    victim, home, defs_dir, write_pipeline, monkeypatch
):
    path = write_pipeline(
        "shop",
        """
        type: assets.Pipeline
        attributes:
          name: shop
          datasets:
            accounts:
              source:
                sql: select id, plan from victim
                observe: "select count(*) from victim; commit; delete from victim"
                connection: SHOP_DB_URL
        """,
    )
    with pytest.raises(DefinitionError) as info:
        run(defs_dir=defs_dir)
    assert str(info.value) == (
        f"{path}:6: pipeline shop, dataset accounts: observe query: `sql` of a database source must be one "
        "statement; found 3"
    )
    _untouched(victim)


def _role(name: str, grants: str) -> None:
    with psycopg2.connect(dbname=name, **PG) as connection, connection.cursor() as cursor:
        cursor.execute(grants)


@pytest.mark.parametrize(
    ("role", "grant", "said"),
    [
        (None, "", "the role 'postgres' is a superuser"),
        ("writer", "grant select, insert on victim to {role}", "the role '{role}' can write to 1 table (victim)"),
        ("reader", "grant select on victim to {role}", None),
    ],
    ids=["superuser", "writer", "reader"],
)
def test_a_role_that_could_write_is_said_once(victim, monkeypatch, caplog, role, grant, said):
    name = f"slipway_t_{secrets.token_hex(3)}_{role}" if role else "postgres"
    if role:
        _role(victim, f"create role {name} login; " + grant.format(role=name))
        monkeypatch.setenv("SHOP_DB_URL", f"postgresql://{name}:pw@127.0.0.1:5432/{victim}")
    monkeypatch.setattr(database, "_warned", set())
    try:
        with caplog.at_level(logging.WARNING, logger="slipway.progress"):
            for _ in range(2):
                assert len(database.read("SHOP_DB_URL", "select id from victim", "here")) == 3
        warnings = [r.getMessage() for r in caplog.records if r.name == "slipway.progress"]
        if said is None:
            assert warnings == []
        else:
            assert warnings == [
                f"database 127.0.0.1:5432/{victim} (SHOP_DB_URL): {said.format(role=name)}; Slipway runs one "
                "statement in a read-only session, but the safe source is a role that can only read (GRANT SELECT)"
            ]
    finally:
        if role:
            _role(victim, f"drop owned by {name}; drop role {name}")


def test_a_query_that_fails_while_streaming_is_one_line_without_a_logged_traceback(victim, caplog):
    sql = "select 1 / (3 - id) as x from victim"  # fails on the third row, after the first were sent
    with caplog.at_level(logging.DEBUG), pytest.raises(DataError) as info:
        database.fingerprint("SHOP_DB_URL", sql, "here")
    assert str(info.value) == "here: the database rejected the query: division by zero"
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def test_only_postgresql_and_sqlite_sources_are_read(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("SHOP_DB_URL", "mysql+pymysql://u:secret@db:3306/x")
    with pytest.raises(DefinitionError) as info:
        database.read("SHOP_DB_URL", "select 1", "here")
    assert str(info.value) == (
        "here: SHOP_DB_URL: database sources read PostgreSQL or SQLite (this URL is mysql); Slipway cannot "
        "promise a read-only session elsewhere"
    )


def test_a_sqlite_source_runs_one_statement_and_only_a_query(monkeypatch, tmp_path: Path):
    import sqlite3

    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table victim (id int)")
        connection.execute("insert into victim values (1), (2)")
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{path}")
    with pytest.raises(DefinitionError) as info:
        database.read("SHOP_DB_URL", "select 1 as a; delete from victim", "here")
    assert str(info.value) == "here: `sql` of a database source must be one statement"
    with pytest.raises(DefinitionError, match="must be a query"):
        database.read("SHOP_DB_URL", "/* a comment */ -- and a line\n delete from victim", "here")
    with sqlite3.connect(path) as connection:
        assert connection.execute("select count(*) from victim").fetchone() == (2,)
