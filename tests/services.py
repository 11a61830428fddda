"""Real services for the storage tier's tests: an S3 server (moto's server mode) and scratch PostgreSQL databases.

Both run on 127.0.0.1 and are started and removed by the tests. PostgreSQL is the machine's
service (``.ci/run`` starts it when it does not answer); each test gets databases of its own.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow_server import free_port, stop_group, wait_until_it_answers

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "slipway-test",
    "AWS_SECRET_ACCESS_KEY": "slipway-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    """moto's S3 server (a real HTTP S3 API, in memory) on 127.0.0.1, in its own process group."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "moto.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                start_new_session=True,
                stdout=log,
                stderr=log,
            )
        wait_until_it_answers(self.process, f"{self.url}/moto-api/data.json", self.folder / "moto.log", seconds=30)

    def stop(self) -> None:
        stop_group(self.process)

    def client(self):  # noqa: ANN201
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", **_keys())

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"]}


def postgres_answers() -> bool:
    import psycopg2

    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
        return True
    except psycopg2.OperationalError:
        return False


@contextmanager
def scratch_databases(*names: str) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases (``slipway_t_<random>_<name>``), dropped afterwards: name -> database."""
    import psycopg2

    tag = secrets.token_hex(4)
    made = {name: f"slipway_t_{tag}_{name}" for name in names}
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for database in made.values():
                cursor.execute(f'CREATE DATABASE "{database}"')
        yield made
    finally:
        with admin.cursor() as cursor:
            for database in made.values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def query(database: str, sql: str) -> list[tuple]:
    """Rows of ``sql`` in ``database``."""
    import psycopg2

    with psycopg2.connect(dbname=database, **PG) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())
