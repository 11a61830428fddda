"""Model registry: the :class:`ModelRegistry` role and its MLflow implementation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import dagster as dg
from pydantic import Field

from resources import mlflow_client
from resources.errors import ResourceError


class ModelRegistry(dg.ConfigurableResource, ABC):
    """Registered model versions and the aliases (``champion``, ``challenger``) that point at them."""

    @abstractmethod
    def register(self, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
        """Create a new version of ``name`` from ``model_uri``; return the version."""

    @abstractmethod
    def version_for_alias(self, name: str, alias: str) -> str | None:
        """The version holding ``alias``, or None."""

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""

    @abstractmethod
    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Add tags to a version (gate results, promotion decision)."""

    @abstractmethod
    def load(self, name: str, version: str) -> Any:
        """Load a registered version as a native (scikit-learn API) model."""


class MlflowModelRegistry(ModelRegistry):
    """The MLflow model registry, with aliases (stages are deprecated).

    Stack YAML::

        model_registry: {type: mlflow}        # registry_uri defaults to the tracking URI
    """

    tracking_uri: str = Field(description="The tracking URI (set from experiment_tracker by the stack).")
    registry_uri: str | None = Field(default=None, description="Registry URI when it differs from tracking_uri.")

    @property
    def _client(self) -> Any:
        return mlflow_client.client(self.tracking_uri, self.registry_uri or "")

    def register(self, name: str, model_uri: str, run_id: str, tags: dict[str, str]) -> str:  # noqa: D102
        from mlflow.exceptions import MlflowException

        try:
            try:
                self._client.get_registered_model(name)
            except MlflowException:
                self._client.create_registered_model(name)
            version = self._client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags)
        except MlflowException as exc:
            raise ResourceError(f"model registry (mlflow): cannot register {name!r}: {exc}") from exc
        return str(version.version)

    def version_for_alias(self, name: str, alias: str) -> str | None:  # noqa: D102
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def set_alias(self, name: str, alias: str, version: str) -> None:  # noqa: D102
        self._client.set_registered_model_alias(name, alias, version)

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:  # noqa: D102
        for key, value in tags.items():
            self._client.set_model_version_tag(name, version, key, value)

    def load(self, name: str, version: str) -> Any:  # noqa: D102
        import mlflow.sklearn

        source = self._client.get_model_version_download_uri(name, version)
        return mlflow.sklearn.load_model(source)
