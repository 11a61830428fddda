"""The S3 artifact store against a real S3 HTTP API (moto's server mode on 127.0.0.1)."""

from __future__ import annotations

import time

import dagster as dg
import pandas as pd
import pytest
from mlflow_server import free_port
from services import S3_ENV, MotoServer

from resources.artifacts import ModelRef, S3ArtifactStore
from resources.errors import DataError, ResourceError

BUCKET = "unit-artifacts"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def creds(monkeypatch):
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)


def store(moto: MotoServer, **changes) -> S3ArtifactStore:
    return S3ArtifactStore(**{"bucket": BUCKET, "prefix": "team/a", "endpoint_url": moto.url, **changes})


def test_tables_models_and_nothing_round_trip_and_each_version_is_kept(moto, creds):
    s3 = store(moto)
    frame = pd.DataFrame({"x": [1, 2, 3], "s": ["a", "b", None]})
    s3.write(("p", "t"), frame, "run1")
    pd.testing.assert_frame_equal(s3.read_version(("p", "t"), "run1"), frame)
    assert s3.has(("p", "t"), "run1") and not s3.has(("p", "t"), "run2")
    assert "team/a/p/t/run1.parquet" in moto.keys(BUCKET, "team/a/p/t/")

    good = ModelRef("m", "1", "models:/m/1", "r1", "champion", {"auc": 0.9})
    failed = ModelRef("m", "2", "models:/m/2", "r2", None, {"auc": 0.1}, gates_passed=False)
    s3.write(("p", "m"), good, "run1")
    s3.write(("p", "m"), failed, "run2")
    assert s3.read_version(("p", "m"), "run1") == good  # the version that failed its gate is kept too
    assert s3.read_version(("p", "m"), "run2") == failed
    s3.write(("p", "side"), None, "run1")
    assert s3.read_version(("p", "side"), "run1") is None
    # No pointer of its own: which version is current is Dagster's record.
    assert not [k for k in moto.keys(BUCKET, "team/a/") if k.endswith("/LATEST")]


def test_what_was_never_stored_is_a_data_error_naming_the_bucket(moto, creds):
    s3 = store(moto, prefix="other")
    with (
        dg.DagsterInstance.ephemeral() as instance,
        pytest.raises(
            DataError, match=r"artifact store \(s3\): p/t has never been materialized in s3://unit-artifacts/other"
        ),
    ):
        s3.read_recorded(instance, dg.AssetKey(["p", "t"]))
    with pytest.raises(DataError, match=r"p/t of run run9 is not stored in s3://unit-artifacts/other"):
        s3.read_version(("p", "t"), "run9")


def test_a_missing_bucket_says_so(moto, creds):
    with pytest.raises(
        ResourceError, match=rf"artifact store \(s3\): {moto.url}, bucket no-such-bucket: the bucket does not exist"
    ):
        store(moto, bucket="no-such-bucket").write(("p", "t"), pd.DataFrame({"x": [1]}), "run1")


def test_no_credentials_names_the_variables_to_set(moto, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ResourceError, match=r"no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        store(moto, timeout_seconds=1).read_version(("p", "t"), "run1")


def test_an_endpoint_that_is_down_fails_after_bounded_retries_naming_it(creds):
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ResourceError) as caught:
        S3ArtifactStore(bucket=BUCKET, endpoint_url=dead, attempts=3, timeout_seconds=1).read_version(
            ("p", "t"), "run1"
        )
    assert str(caught.value).startswith(
        f"artifact store (s3): {dead}, bucket {BUCKET}: cannot list (no answer after 3 attempts)"
    )
    assert time.monotonic() - started < 30
    assert S3_ENV["AWS_SECRET_ACCESS_KEY"] not in str(caught.value)


def test_tables_stream_through_files_and_served_batches_list_in_order(moto, creds, tmp_path):
    from resources.artifacts import TableFile

    s3 = store(moto, prefix="files")
    source = tmp_path / "scored.parquet"
    frame = pd.DataFrame({"x": range(1000), "prediction": [0, 1] * 500})
    frame.to_parquet(source, index=False)
    s3.write(("p", "scored"), TableFile(source), "run1")
    assert not source.exists()  # consumed: uploaded from the file
    with dg.DagsterInstance.ephemeral() as instance:
        with s3.recorded_file(instance, dg.AssetKey(["p", "scored"]), "run1") as path:
            pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
        with pytest.raises(DataError, match="run9 is not stored"):
            with s3.recorded_file(instance, dg.AssetKey(["p", "scored"]), "run9"):
                pass
    for name in ("0002-a.parquet", "0001-b.parquet"):
        s3.append_batch(("p", "served_m"), name, pd.DataFrame({"a": [name]}))
    assert s3.batches(("p", "served_m")) == ["0001-b.parquet", "0002-a.parquet"]
    assert s3.read_batches(("p", "served_m"), s3.batches(("p", "served_m")))["a"].tolist() == [
        "0001-b.parquet",
        "0002-a.parquet",
    ]
