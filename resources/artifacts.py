"""Artifact storage: the :class:`ArtifactStore` role (a Dagster IO manager) and its local variant.

Each asset output is stored once, in a form fit for it: tables as Parquet, models as a small
JSON reference to the version in the model registry (the model itself lives only there, never
pickled a second time). Files are written under a temporary name and renamed, so a failed run
never leaves a half-written artifact, and earlier versions are kept.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from resources.errors import DataError, ResourceError


@dataclass(frozen=True)
class ModelRef:
    """A trained model, by reference: where it is registered and what it scored."""

    name: str
    version: str
    uri: str
    run_id: str
    alias: str | None
    metrics: dict[str, float]


class ArtifactStore(dg.ConfigurableIOManager, ABC):
    """Stores asset outputs between steps and runs."""

    @abstractmethod
    def has(self, key: tuple[str, ...]) -> bool:
        """True when an output of ``key`` is stored."""

    @abstractmethod
    def read(self, key: tuple[str, ...]) -> Any:
        """The latest stored output of ``key``."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:  # noqa: D102
        self.write(tuple(context.asset_key.path), obj, context.run_id)

    def load_input(self, context: dg.InputContext) -> Any:  # noqa: D102
        return self.read(tuple(context.asset_key.path))

    @abstractmethod
    def write(self, key: tuple[str, ...], obj: Any, version: str) -> None:
        """Store ``obj`` as version ``version`` of ``key`` and make it the latest."""


class LocalArtifactStore(ArtifactStore):
    """Artifacts on the local file system.

    Layout: ``<base_dir>/<pipeline>/<asset>/<dagster run id>.parquet|.json`` and a ``LATEST``
    file naming the current one.

    Stack YAML::

        artifact_store: {type: local, base_dir: "${SLIPWAY_HOME}/artifacts"}
    """

    base_dir: str = Field(description="Root folder for artifacts.")

    def _folder(self, key: tuple[str, ...]) -> Path:
        return Path(self.base_dir).joinpath(*key)

    def has(self, key: tuple[str, ...]) -> bool:  # noqa: D102
        latest = self._folder(key) / "LATEST"
        return latest.exists() and (self._folder(key) / latest.read_text().strip()).exists()

    def write(self, key: tuple[str, ...], obj: Any, version: str) -> None:  # noqa: D102
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, ModelRef):
            name = f"{version}.json"
            _atomic_write(folder / name, json.dumps(asdict(obj), indent=2).encode())
        elif hasattr(obj, "to_parquet"):
            name = f"{version}.parquet"
            tmp = folder / f".{name}.tmp"
            obj.to_parquet(tmp, index=False)
            os.replace(tmp, folder / name)
        else:
            raise ResourceError(
                f"artifact store (local): cannot store a {type(obj).__name__} for {'/'.join(key)}; "
                "assets must return a DataFrame or a model reference"
            )
        _atomic_write(folder / "LATEST", name.encode())

    def read(self, key: tuple[str, ...]) -> Any:  # noqa: D102
        folder = self._folder(key)
        try:
            name = (folder / "LATEST").read_text().strip()
        except FileNotFoundError as exc:
            raise DataError(
                f"artifact store (local): {'/'.join(key)} has never been materialized under {self.base_dir}; "
                "run `slipway run` for its pipeline first"
            ) from exc
        if name.endswith(".json"):
            return ModelRef(**json.loads((folder / name).read_text()))
        import pandas as pd

        return pd.read_parquet(folder / name)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
