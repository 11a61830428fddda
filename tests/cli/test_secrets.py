"""A password in a stack URL is never shown or stored (issue 7, part)."""

from __future__ import annotations

import sqlite3

import pytest
from mlflow_server import MlflowServer
from stored import stored_anywhere
from test_cli import slipway

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SECRET = "s3cret-Pa55"
# A Postgres URL the local stack cannot use (no psycopg2 driver here): the run fails fast,
# and the failure message names the store.
URL = f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/slipway_nosuchdb"


def test_stack_show_hides_the_password(home):
    done = slipway("stack", "show", home=home, env={"SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI": URL})
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "tracking_uri: 'postgresql+psycopg2://postgres:***@127.0.0.1:5432/slipway_nosuchdb'" in done.stdout


def test_a_failing_store_never_shows_or_stores_the_password(home):
    done = slipway("run", "houses", home=home, env={"SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI": URL})
    assert done.returncode == 1
    assert "postgres:***@127.0.0.1" in done.stdout  # the failure names the store, without the password
    assert SECRET not in done.stdout + done.stderr
    history = home / "dagster" / "storage" / "history"
    for database in [history / "runs.db", *sorted((history / "runs").glob("*.db"))]:
        with sqlite3.connect(database) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                rows = db.execute(f"select * from {table}").fetchall()  # noqa: S608
                assert SECRET not in repr(rows), f"{database.name}:{table}"


def test_a_password_in_every_stack_url_is_never_shown_or_stored(home, tmp_path):
    """A real run against an MLflow server, with credentials in the tracking, registry and UI URLs:
    the run succeeds and no output, Dagster record (runs, events, run config, snapshots) or
    MLflow record (tags, params, artifacts) holds the password."""
    server = MlflowServer(tmp_path / "server")
    server.start()
    try:
        with_password = server.url.replace("http://", f"http://slipway:{SECRET}@")
        env = {
            "SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI": with_password,
            "SLIPWAY_MODEL_REGISTRY__REGISTRY_URI": with_password,
            "SLIPWAY_EXPERIMENT_TRACKER__UI_URL": f"https://viewer:{SECRET}@mlflow.example.com",
        }
        done = slipway("run", "houses", home=home, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "https://viewer:***@mlflow.example.com/#/models/" in done.stdout  # the summary's MLflow link
        shown = slipway("stack", "show", home=home, env=env)
        assert shown.returncode == 0 and "slipway:***@127.0.0.1" in shown.stdout
        for output in (done.stdout, done.stderr, shown.stdout, shown.stderr):
            assert SECRET not in output
    finally:
        server.stop()
    assert stored_anywhere(home, SECRET) == []
    assert stored_anywhere(tmp_path / "server", SECRET) == []
