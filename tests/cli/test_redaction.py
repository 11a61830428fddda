"""A password is hidden whatever characters it holds: quotes, @, :, %, spaces, unicode.

Redaction parses URLs rather than matching a polite password, and passwords of URLs held by
the environment (where every secret comes from) are hidden wherever they appear. Each sink is
checked: the terminal, Dagster's storage, MLflow's runs (tags, params, artifacts) and alerts.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pandas as pd
import psycopg2
import pytest
from services import PG, scratch_databases
from stored import stored_anywhere
from test_cli import slipway

from resources.redact import redact

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

PASSWORDS = ["pa'ss", 'pa"ss', "p@ss", "p:ss", "p%41ss", "pa ss", "pässwörd✓", "p/ss?#x"]


def _variants(secret: str) -> list[str]:
    """The forms a password can take when stored: as is, JSON-escaped, percent-encoded."""
    return sorted(
        {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe="")}
    )


def _shown(text: str, secret: str) -> list[str]:
    return [form for form in _variants(secret) if form in text]


@pytest.mark.parametrize("secret", PASSWORDS)
@pytest.mark.parametrize(
    "template",
    [
        "postgresql+psycopg2://quoter:{}@db.example:5432/crm",
        "error: cannot connect to 'postgresql://quoter:{}@db.example:5432/x' (CRM_URL): refused",
        'uri="http://user:{}@mlflow.internal:5000/api", then bob@example.com wrote',
        "mysql://root:{}@[::1]:3306/db?ssl=1",
    ],
)
def test_a_url_in_any_text_has_its_password_hidden(secret, template):
    shown = redact(template.format(secret))
    assert _shown(shown, secret) == [], shown
    assert ":***@" in shown


@pytest.mark.parametrize("secret", PASSWORDS)
def test_a_password_of_a_url_in_the_environment_is_hidden_anywhere(secret, monkeypatch):
    monkeypatch.setenv("SOME_DATABASE_URL", f"postgresql://quoter:{secret}@db.example:5432/crm")
    # A driver's message may quote the password alone, far from any URL.
    shown = redact(f"FATAL: password authentication failed (password was {secret!r}); retrying")
    assert _shown(shown, secret) == [], shown


def test_a_url_without_a_password_is_left_alone():
    for text in ("http://mlflow.internal:5000/#/experiments/1", "s3://bucket/a@b", "postgresql://app@db/x"):
        assert redact(text) == text


QUOTED = ["pa'ss", "p@ss", "pa ss", "pässwörd✓"]


@pytest.mark.parametrize("secret", QUOTED)
def test_stack_show_and_a_failing_tracker_never_show_or_store_the_password(home, secret):
    from mlflow_server import free_port

    url = f"postgresql+psycopg2://quoter:{secret}@127.0.0.1:{free_port()}/mlflow"
    env = {"SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI": url}
    shown = slipway("stack", "show", home=home, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "quoter:***@127.0.0.1" in shown.stdout
    done = slipway("run", "houses", home=home, env=env)
    assert done.returncode == 1
    for output in (shown.stdout, shown.stderr, done.stdout, done.stderr):
        assert _shown(output, secret) == [], output
    assert "quoter:***@127.0.0.1" in done.stdout + done.stderr
    assert [hit for form in _variants(secret) for hit in stored_anywhere(home, form)] == []


SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    accounts:
      source: {sql: "select * from accounts", connection: SHOP_DB_URL}
  models:
    clf:
      dataset: accounts
      target: churned
      estimator: sklearn.linear_model.LogisticRegression
      metrics: [accuracy]
"""


@pytest.mark.parametrize("secret", QUOTED)
def test_a_database_source_with_any_password_trains_and_stores_no_password(home, defs_dir, write_pipeline, secret):
    with scratch_databases("shop") as made:
        with psycopg2.connect(dbname=made["shop"], **PG) as connection, connection.cursor() as cursor:
            cursor.execute("create table accounts (tenure int, churned int)")
            cursor.execute("insert into accounts select i, i % 2 from generate_series(1, 60) i")
        write_pipeline("shop", SHOP)
        # Trust authentication on this server: any password logs in, so the run goes all the way.
        url = f"postgresql://postgres:{secret}@127.0.0.1:5432/{made['shop']}"
        done = slipway("--defs", str(defs_dir), "run", home=home, env={"SHOP_DB_URL": url})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "shop/clf" in done.stdout
        assert _shown(done.stdout + done.stderr, secret) == []
        assert [hit for form in _variants(secret) for hit in stored_anywhere(home, form)] == []
    assert pd  # frames are read from the database above


def test_an_at_sign_in_a_password_is_encoded_so_the_host_is_found():
    from resources.redact import with_encoded_at

    assert with_encoded_at("postgresql://u:p@ss@db:5432/x") == "postgresql://u:p%40ss@db:5432/x"
    assert with_encoded_at("postgresql://u:p%40ss@db:5432/x") == "postgresql://u:p%40ss@db:5432/x"
    assert with_encoded_at("sqlite:////tmp/a@b.db") == "sqlite:////tmp/a@b.db"
