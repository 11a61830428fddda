"""Artifact storage: the :class:`ArtifactStore` role (a Dagster IO manager), on local files or S3.

Each asset output is stored once, in a form fit for it: tables as Parquet, models as a small
JSON reference to the version in the model registry (the model itself lives only there, never
pickled a second time). A failed run never leaves a half-written artifact, and earlier versions
are kept.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import dagster as dg

from resources.errors import DataError, ResourceError
from resources.redact import redact, safe_cause
from resources.settings import LocalStoreSettings, S3StoreSettings

STORED = "slipway/stored"
# On a model's materialization whose version failed a gate: kept for audit, not the one read downstream.
NOT_CURRENT = "slipway/not_current"
# How many of an asset's latest materializations are searched for the current stored version.
RECORD_DEPTH = 100
#: How every error of an artifact store begins: ``artifact store (<kind>): …``.
ARTIFACT_STORE_ERROR = "artifact store ("


@dataclass(frozen=True)
class TableFile:
    """A table an asset wrote to a Parquet file itself (streamed, larger than memory): stored as that file."""

    path: Path


@dataclass(frozen=True)
class ModelRef:
    """A trained model, by reference: where it is registered and what it scored."""

    name: str
    version: str
    uri: str
    run_id: str
    alias: str | None
    metrics: dict[str, float]
    gates_passed: bool = True


class ArtifactStore(dg.ConfigurableIOManager, ABC):
    """Stores asset outputs between steps and runs.

    Layout, whatever the medium: ``<root>/<pipeline>/<asset>/<dagster run id>.parquet|.json``.
    Which version is current is Dagster's record alone: the latest materialization of the asset
    that this store holds and that is not marked :data:`NOT_CURRENT` (a model that failed a gate).
    A table written by a run killed before Dagster recorded it is read by nobody. Each
    implementation provides four blob operations (:meth:`_get`, :meth:`_put`, :meth:`_find`,
    :meth:`_where`); what is stored is decided here once.
    """

    #: The implementation's name in messages: ``artifact store (<kind>): …``.
    kind: ClassVar[str] = "?"

    @abstractmethod
    def _get(self, key: tuple[str, ...], name: str) -> bytes | None:
        """The blob ``name`` of ``key``; None when it does not exist."""

    @abstractmethod
    def _put(self, key: tuple[str, ...], name: str, data: bytes) -> None:
        """Write the blob ``name`` of ``key`` whole: a reader never sees part of it."""

    @abstractmethod
    def _find(self, key: tuple[str, ...], version: str) -> str | None:
        """The blob name of stored version ``version`` of ``key`` (``<version>.parquet|.json``), or None."""

    @abstractmethod
    def _where(self) -> str:
        """Where the store keeps things, for messages (``under /path``, ``in s3://bucket/prefix``)."""

    def _put_file(self, key: tuple[str, ...], name: str, path: Path) -> None:
        """Store the file ``path`` as the blob ``name`` of ``key`` (whole, as :meth:`_put`); the file is consumed."""
        self._put(key, name, path.read_bytes())
        path.unlink(missing_ok=True)

    @contextmanager
    def recorded_file(self, instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> Iterator[Path]:
        """The current version of table ``asset_key`` as a local Parquet file, to stream (:meth:`read_recorded`)."""
        key = tuple(asset_key.path)
        version = self.recorded_version(instance, asset_key)
        path = None if version is None else self.local_path(key, version)
        if path is not None and path.suffix == ".parquet":
            yield path
            return
        name = None if version is None else self._find(key, version)
        data = None if name is None else self._get(key, name)
        if version is None or name is None or not name.endswith(".parquet") or data is None:
            self.read_recorded(instance, asset_key)  # says why (never materialized, not stored)
            raise DataError(f"artifact store ({self.kind}): {'/'.join(key)} is not a table")
        with tempfile.TemporaryDirectory(prefix="slipway-") as tmp:
            copy = Path(tmp) / name
            copy.write_bytes(data)
            yield copy

    def has(self, key: tuple[str, ...], version: str) -> bool:
        """True when version ``version`` (a Dagster run id) of ``key`` is stored."""
        return self._find(key, version) is not None

    def local_path(self, key: tuple[str, ...], version: str) -> Path | None:
        """The local file of a stored version, when the store is local and has it (else None)."""
        return None

    def read_recorded(self, instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> Any:
        """The current version of ``asset_key``: the one Dagster's record names (:meth:`recorded_version`)."""
        key = tuple(asset_key.path)
        version = self.recorded_version(instance, asset_key)
        if version is None:
            raise DataError(
                f"artifact store ({self.kind}): {'/'.join(key)} has never been materialized {self._where()}; "
                "run `slipway run` for its pipeline first"
            )
        return self.read_version(key, version)

    @staticmethod
    def recorded_version(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> str | None:
        """The run id of the latest materialization of ``asset_key`` this store holds and that is current."""
        for limit in (1, RECORD_DEPTH):  # nearly always the latest; deeper only after a gate-failed model
            for record in instance.fetch_materializations(asset_key, limit=limit).records:
                metadata = record.asset_materialization.metadata if record.asset_materialization else {}
                if _value(metadata.get(STORED)) and not _value(metadata.get(NOT_CURRENT)):
                    return record.run_id
        return None

    def read_version(self, key: tuple[str, ...], version: str) -> Any:
        """Stored version ``version`` (a Dagster run id) of ``key``; :class:`DataError` when it is not stored.

        Every version is kept until the store is deleted (`slipway repro` reads old ones).
        """
        name = self._find(key, version)
        data = None if name is None else self._get(key, name)
        if name is None or data is None:
            raise DataError(
                f"artifact store ({self.kind}): {'/'.join(key)} of run {version[:8]} is not stored {self._where()}"
            )
        return self._decode(key, name, data)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:  # noqa: D102
        self.write(tuple(context.asset_key.path), obj, context.run_id)
        # Marks the materialization as one this store holds: only those are checked for reuse
        # and read downstream; a model that failed a gate is kept for audit, not read.
        failed_gate = isinstance(obj, ModelRef) and not obj.gates_passed
        context.add_output_metadata({STORED: True, **({NOT_CURRENT: True} if failed_gate else {})})

    def load_input(self, context: dg.InputContext) -> Any:  # noqa: D102
        return self.read_recorded(context.instance, context.asset_key)

    def write(self, key: tuple[str, ...], obj: Any, version: str) -> None:
        """Store ``obj`` as version ``version`` (a Dagster run id) of ``key``.

        It becomes current only when Dagster records its materialization (:meth:`recorded_version`).
        (A dataset that fails a blocking expectation never reaches the store.)
        """
        if isinstance(obj, ModelRef):
            name, data = f"{version}.json", json.dumps(asdict(obj), indent=2).encode()
        elif isinstance(obj, TableFile):
            self._put_file(key, f"{version}.parquet", obj.path)
            return
        elif obj is None:  # an asset that only has side effects (a hand-written one, say)
            name, data = f"{version}.json", b"null"
        elif hasattr(obj, "to_parquet"):
            name, sink = f"{version}.parquet", io.BytesIO()
            try:
                write_parquet(as_table(obj), sink)
            except DataError as exc:
                raise DataError(f"artifact store ({self.kind}): {'/'.join(key)}: {exc}") from exc
            data = sink.getvalue()
        else:
            raise ResourceError(
                f"artifact store ({self.kind}): cannot store a {type(obj).__name__} for {'/'.join(key)}; "
                "assets must return a DataFrame, a model reference or None"
            )
        self._put(key, name, data)

    def _decode(self, key: tuple[str, ...], name: str, data: bytes | None) -> Any:
        if data is None:
            raise DataError(f"artifact store ({self.kind}): {'/'.join(key)}: {name} is gone {self._where()}")
        if name.endswith(".json"):
            stored = json.loads(data)
            return None if stored is None else ModelRef(**stored)
        return read_parquet(io.BytesIO(data))


class LocalArtifactStore(ArtifactStore, LocalStoreSettings):
    """Artifacts on the local file system, under ``base_dir``.

    Files are written under a temporary name and renamed, so a failed run never leaves a
    half-written artifact. Stack YAML::

        artifact_store: {type: local, base_dir: "${SLIPWAY_HOME}/artifacts"}
    """

    kind: ClassVar[str] = "local"

    def _folder(self, key: tuple[str, ...]) -> Path:
        return Path(self.base_dir).joinpath(*key)

    def _get(self, key: tuple[str, ...], name: str) -> bytes | None:
        try:
            return (self._folder(key) / name).read_bytes()
        except FileNotFoundError:
            return None

    def _put(self, key: tuple[str, ...], name: str, data: bytes) -> None:
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / name, data)

    def _put_file(self, key: tuple[str, ...], name: str, path: Path) -> None:
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.tmp"
        shutil.move(path, tmp)  # a rename when on the same file system, else a streamed copy
        os.replace(tmp, folder / name)

    def _find(self, key: tuple[str, ...], version: str) -> str | None:
        path = self.local_path(key, version)
        return None if path is None else path.name

    def _where(self) -> str:
        return f"under {self.base_dir}"

    def local_path(self, key: tuple[str, ...], version: str) -> Path | None:  # noqa: D102
        folder = self._folder(key)
        found = [path for path in (folder / f"{version}.parquet", folder / f"{version}.json") if path.exists()]
        return found[0] if found else None


class S3ArtifactStore(ArtifactStore, S3StoreSettings):
    """Artifacts in an S3-compatible object store: ``s3://<bucket>/<prefix>/<pipeline>/<asset>/…``.

    An object appears whole when its upload completes, so a failed run never leaves part of
    one. Every request is retried a bounded number of times (``attempts``, ``timeout_seconds``);
    then the step fails naming the endpoint and bucket (never a credential). Stack YAML::

        artifact_store: {type: s3, bucket: ml-artifacts, prefix: slipway, endpoint_url: "http://minio:9000"}
    """

    kind: ClassVar[str] = "s3"

    def _key(self, key: tuple[str, ...], name: str) -> str:
        return "/".join([p for p in self.prefix.strip("/").split("/") if p] + [*key, name])

    def _client(self) -> Any:
        return s3_client(self.endpoint_url, self.region, self.attempts, self.timeout_seconds)

    def _where(self) -> str:
        return f"in s3://{self.bucket}/{self.prefix.strip('/')}"

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        """``client.<method>(Bucket=…, **kwargs)``; a missing object is None, any other failure a ResourceError."""
        try:
            client = self._client()
            answer = getattr(client, method)(Bucket=self.bucket, **kwargs)
            return bytes(answer["Body"].read()) if method == "get_object" else answer
        except Exception as exc:
            if type(exc).__name__ == "NoSuchKey":
                return None
            raise s3_error(exc, what, self.bucket, self.endpoint_url, self.attempts) from safe_cause(exc)

    def _get(self, key: tuple[str, ...], name: str) -> bytes | None:
        data: bytes | None = self._call("read", "get_object", Key=self._key(key, name))
        return data

    def _put(self, key: tuple[str, ...], name: str, data: bytes) -> None:
        self._call("write", "put_object", Key=self._key(key, name), Body=data)

    def _put_file(self, key: tuple[str, ...], name: str, path: Path) -> None:
        # Streamed from the file (in parts when large); the object appears when the upload completes.
        self._call("write", "upload_file", Key=self._key(key, name), Filename=str(path))
        path.unlink(missing_ok=True)

    def _find(self, key: tuple[str, ...], version: str) -> str | None:
        answer = self._call("list", "list_objects_v2", Prefix=self._key(key, f"{version}."), MaxKeys=10)
        names = {item["Key"].rsplit("/", 1)[-1] for item in answer.get("Contents", [])}
        found = [name for name in (f"{version}.parquet", f"{version}.json") if name in names]
        return found[0] if found else None


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def s3_client(endpoint_url: str | None, region: str | None, attempts: int, timeout: float) -> Any:
    """One boto3 S3 client per configuration and process (clients are thread-safe; building one costs ~50 ms).

    Credentials are boto3's own chain: the environment, a web identity (a Kubernetes service
    account's role), an instance profile. Retries are boto3's standard mode, bounded.
    """
    wanted = (os.getpid(), endpoint_url, region, attempts, timeout)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(wanted)
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": attempts, "mode": "standard"},
                connect_timeout=timeout,
                read_timeout=timeout,
                # Path-style: MinIO, Ceph and moto serve every bucket on one host name.
                s3={"addressing_style": "path"},
            )
            client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
            _CLIENTS[wanted] = client
        return client


#: botocore's errors for an endpoint that did not answer (retried, up to ``attempts`` in all).
_UNANSWERED = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
}


def s3_error(
    exc: BaseException, what: str, bucket: str, endpoint_url: str | None, attempts: int | None = None
) -> ResourceError:
    """A one-line :class:`ResourceError` for a failed S3 request, naming the endpoint and bucket, never a secret."""
    endpoint = redact(endpoint_url or "AWS S3")
    where = f"artifact store (s3): {endpoint}, bucket {bucket}"
    name = type(exc).__name__
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return ResourceError(
            f"{where}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(from a Kubernetes secret in a cluster), or give the pod an IAM role"
        )
    if code == "NoSuchBucket":
        return ResourceError(f"{where}: the bucket does not exist; create it, or set artifact_store.bucket")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return ResourceError(f"{where}: access denied ({code}) to {what}: check the credentials and the bucket policy")
    if code is not None:
        return ResourceError(f"{where}: cannot {what}: {code}")
    detail = f"{name}: {redact(str(exc)).splitlines()[0][:200] if str(exc) else ''}"
    if name in _UNANSWERED:
        tries = f"{attempts} attempts" if attempts else "the retries"
        return ResourceError(f"{where}: cannot {what} (no answer after {tries}): {detail}")
    return ResourceError(f"{where}: cannot {what}: {detail}")


def as_table(frame: Any) -> Any:
    """``frame`` as a plain table: named index levels (a group-by's key) become columns, others are dropped.

    Tables are stored without their index (Parquet columns only), so a key kept in the index
    would otherwise vanish from the stored table without a word. An unnamed level (row
    positions, as ``groupby().apply()`` leaves) is dropped rather than stored as ``level_1``; a
    level that repeats a column with the same values (``set_index(..., drop=False)``) is dropped.
    """
    import numpy as np
    import pandas as pd

    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return frame
    keep = []
    for level, name in enumerate(index.names):
        if name is None:
            continue
        if name in frame.columns:
            values = index.get_level_values(level)
            if not np.array_equal(np.asarray(values, dtype=object), np.asarray(frame[name], dtype=object)):
                raise DataError(f"its index level {name!r} and its column {name!r} hold different values")
            continue
        keep.append(name)
    table = frame.reset_index(level=keep) if keep else frame
    return table.reset_index(drop=True)


def write_parquet(frame: Any, path: Path | BinaryIO) -> None:
    """``frame.to_parquet(path, index=False)``, with dictionary encoding only where it pays.

    ``path`` is a file name or a binary file object.

    pandas' default dictionary-encodes every column; on numeric columns that costs more than
    half of the write (1.6 ms of 2.2 ms for 10,000 rows of three columns, on every asset built)
    and makes the file no smaller. Text and binary columns, where repeated values are common,
    keep it. The pandas metadata is written as ``to_parquet`` writes it, so a table reads back
    with the same dtypes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    odd = [c for c in frame.columns if not isinstance(c, str)]
    if odd:  # pyarrow would store them as text silently, and they would read back renamed
        raise DataError(f"cannot store the table as Parquet: column names must be text, not {odd[0]!r}")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DataError(f"cannot store the table as Parquet: {exc}") from exc
    repeated = [
        field.name
        for field in table.schema
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type) or pa.types.is_binary(field.type)
    ]
    pq.write_table(table, path, use_dictionary=repeated or False)


def read_parquet(path: Path | BinaryIO) -> Any:
    """A table :func:`write_parquet` wrote, as a pandas DataFrame."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _value(entry: Any) -> Any:
    """A metadata entry's value (Dagster wraps them: ``BoolMetadataValue(value=True)``)."""
    return getattr(entry, "value", entry)
