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
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg

from resources.errors import DataError, ResourceError
from resources.partitioned import load_partitions, partition_path
from resources.redact import safe_cause
from resources.s3 import s3_client, s3_error
from resources.settings import LocalStoreSettings, S3StoreSettings
from resources.tables import as_table, read_parquet, write_parquet

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
    def recorded_file(
        self, instance: dg.DagsterInstance, asset_key: dg.AssetKey, version: str | None = None
    ) -> Iterator[Path]:
        """Table ``asset_key`` as a local Parquet file, to stream: stored ``version`` (a run id), else the current."""
        key = tuple(asset_key.path)
        version = version or self.recorded_version(instance, asset_key)
        path = None if version is None else self.local_path(key, version)
        if path is not None and path.suffix == ".parquet":
            yield path
            return
        if version is None:
            self.read_recorded(instance, asset_key)  # says it was never materialized
        assert version is not None
        name = self._find(key, version)
        if name is None:
            raise DataError(
                f"artifact store ({self.kind}): {'/'.join(key)} of run {version[:8]} is not stored {self._where()}"
            )
        if not name.endswith(".parquet"):
            raise DataError(f"artifact store ({self.kind}): {'/'.join(key)} is not a table")
        with tempfile.TemporaryDirectory(prefix="slipway-") as tmp:
            copy = Path(tmp) / name
            if not self._get_file(key, name, copy):
                raise DataError(f"artifact store ({self.kind}): {'/'.join(key)}: {name} is gone {self._where()}")
            yield copy

    def _get_file(self, key: tuple[str, ...], name: str, path: Path) -> bool:
        """Copy the blob ``name`` of ``key`` to the file ``path``; False when it does not exist."""
        data = self._get(key, name)
        if data is not None:
            path.write_bytes(data)
        return data is not None

    def _list(self, key: tuple[str, ...]) -> list[str]:
        """The names of the blobs of ``key`` (sorted); only batch stores (:meth:`append_batch`) use it."""
        raise ResourceError(f"artifact store ({self.kind}): cannot list {'/'.join(key)}")

    def append_batch(self, key: tuple[str, ...], name: str, frame: Any) -> None:
        """Add the table ``frame`` to the batches of ``key`` (served traffic) as ``name`` (``<time>-<writer>``)."""
        sink = io.BytesIO()
        write_parquet(as_table(frame), sink)
        self._put(key, name, sink.getvalue())

    def batches(self, key: tuple[str, ...]) -> list[str]:
        """The batch names of ``key``, oldest first (names begin with their time)."""
        return [n for n in self._list(key) if n.endswith(".parquet") and not n.startswith(".")]

    def read_batches(self, key: tuple[str, ...], names: list[str]) -> Any:
        """The batches ``names`` of ``key`` as one table (a batch that is gone is skipped)."""
        import pandas as pd

        frames = [read_parquet(io.BytesIO(data)) for n in names if (data := self._get(key, n)) is not None]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

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
        found = ArtifactStore.recorded(instance, asset_key)
        return None if found is None else found[0]

    @staticmethod
    def recorded(
        instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None = None
    ) -> tuple[str, str | None] | None:
        """:meth:`recorded_version` (of ``partition``) and the data version its materialization recorded."""
        wanted: Any = asset_key
        if partition is not None:
            wanted = dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition])
        for limit in (1, RECORD_DEPTH):  # nearly always the latest; deeper only after a gate-failed model
            for record in instance.fetch_materializations(wanted, limit=limit).records:
                current = is_current(record)
                if current is not None:
                    return current
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
        key = tuple(context.asset_key.path)
        if context.has_asset_partitions:
            partitions = context.asset_partition_keys
            if len(partitions) != 1:
                raise ResourceError(
                    f"artifact store ({self.kind}): {'/'.join(key)}: one run step wrote {len(partitions)} partitions "
                    "as one output; Slipway builds one partition per step"
                )
            key = partition_path(context.asset_key, partitions[0])
        self.write(key, obj, context.run_id)
        # Marks the materialization as one this store holds: only those are checked for reuse
        # and read downstream; a model that failed a gate is kept for audit, not read.
        failed_gate = isinstance(obj, ModelRef) and not obj.gates_passed
        context.add_output_metadata({STORED: True, **({NOT_CURRENT: True} if failed_gate else {})})

    def load_input(self, context: dg.InputContext) -> Any:  # noqa: D102
        if context.has_asset_partitions:
            return load_partitions(self, context)
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


def is_current(record: Any) -> tuple[str, str | None] | None:
    """A materialization's run and data version when the store holds its output and it is current; else None."""
    materialization = record.asset_materialization
    metadata = materialization.metadata if materialization else {}
    if _value(metadata.get(STORED)) and not _value(metadata.get(NOT_CURRENT)):
        tags = (materialization.tags if materialization else None) or {}
        return record.run_id, tags.get("dagster/data_version")
    return None


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
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(folder / name, data)
        except OSError as exc:  # a full disk, a read-only folder: the store's, not the data's
            where = f"{'/'.join(key)}/{name} {self._where()}"
            raise ResourceError(f"artifact store ({self.kind}): cannot write {where}: {exc.strerror or exc}") from exc

    def _put_file(self, key: tuple[str, ...], name: str, path: Path) -> None:
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.tmp"
        shutil.move(path, tmp)  # a rename when on the same file system, else a streamed copy
        os.replace(tmp, folder / name)

    def _list(self, key: tuple[str, ...]) -> list[str]:
        folder = self._folder(key)
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

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

    def _list(self, key: tuple[str, ...]) -> list[str]:
        prefix = self._key(key, "")
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            answer = self._call("list", "list_objects_v2", Prefix=prefix, **token)
            names += [item["Key"][len(prefix) :] for item in answer.get("Contents", [])]
            if not answer.get("IsTruncated"):
                return sorted(n for n in names if "/" not in n)
            token = {"ContinuationToken": answer["NextContinuationToken"]}

    def _get_file(self, key: tuple[str, ...], name: str, path: Path) -> bool:
        # Streamed to the file (in parts when large): a table larger than memory.
        try:
            self._client().download_file(Bucket=self.bucket, Key=self._key(key, name), Filename=str(path))
        except Exception as exc:
            if type(exc).__name__ == "NoSuchKey" or "(404)" in str(exc):  # download_file asks HeadObject first
                return False
            raise s3_error(exc, "read", self.bucket, self.endpoint_url, self.attempts) from safe_cause(exc)
        return True

    def _put_file(self, key: tuple[str, ...], name: str, path: Path) -> None:
        # Streamed from the file (in parts when large); the object appears when the upload completes.
        self._call("write", "upload_file", Key=self._key(key, name), Filename=str(path))
        path.unlink(missing_ok=True)

    def _find(self, key: tuple[str, ...], version: str) -> str | None:
        answer = self._call("list", "list_objects_v2", Prefix=self._key(key, f"{version}."), MaxKeys=10)
        names = {item["Key"].rsplit("/", 1)[-1] for item in answer.get("Contents", [])}
        found = [name for name in (f"{version}.parquet", f"{version}.json") if name in names]
        return found[0] if found else None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _value(entry: Any) -> Any:
    """A metadata entry's value (Dagster wraps them: ``BoolMetadataValue(value=True)``)."""
    return getattr(entry, "value", entry)
