"""The registry's promotion lock file and the URIs its errors show."""

from __future__ import annotations

from resources.mlflow_client import sqlite_lock_file as _lock_file
from resources.redact import redact


def test_one_database_one_lock_however_its_uri_is_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    absolute = _lock_file(f"sqlite:///{tmp_path}/mlflow.db", "churn.clf")
    assert absolute == tmp_path / "mlflow.db.locks" / "churn.clf.lock"
    assert _lock_file("sqlite:///mlflow.db?timeout=20", "churn.clf") == absolute
    assert _lock_file("http://mlflow:5000", "churn.clf") is None


def test_registry_errors_never_show_a_password():
    assert redact("postgresql+psycopg2://ml:s3cret@db:5432/mlflow") == "postgresql+psycopg2://ml:***@db:5432/mlflow"
    assert redact("sqlite:////x/mlflow.db") == "sqlite:////x/mlflow.db"
