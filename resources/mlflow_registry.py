"""The model registry on MLflow: versions, aliases, promotion turns, and a file lock per model.

The role (:class:`resources.registry.ModelRegistry`) says what a registry answers; this is how
MLflow's registry answers it, through a local SQLite database or an MLflow server.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field

from resources import mlflow_client
from resources import registry as role
from resources.errors import ResourceError
from resources.mlflow_errors import already_exists, not_found, registered, retried
from resources.mlflow_store import store_uri
from resources.redact import redact, safe_cause
from resources.registry import (
    ABANDONED_TAG,
    ALIAS_RECORD_PREFIX,
    PIN_RECORD_PREFIX,
    PROMOTING_TAG,
    AliasState,
    ModelRegistry,
)
from resources.settings import MlflowRegistrySettings


class MlflowModelRegistry(ModelRegistry, MlflowRegistrySettings):
    """The MLflow model registry, with aliases (stages are deprecated).

    Promotions of one model are serialized by a lock the registry's store can hold for every
    process that uses it: an ``flock`` on a file beside a SQLite database. A store reached over
    HTTP offers no lock; there the per-model Dagster pool (one training per model on an
    instance) is what serializes them.

    Stack YAML::

        model_registry: {type: mlflow}        # registry_uri defaults to the tracking URI
    """

    tracking_uri: str = Field(description="The tracking URI (set from experiment_tracker by the stack).")

    @property
    def _client(self) -> Any:
        try:
            return mlflow_client.client(self.tracking_uri, self.registry_uri or "")
        except Exception as exc:  # the store cannot be opened (a database that is down, a bad URI)
            raise self._fail("connect", exc) from safe_cause(exc)

    @property
    def location(self) -> str:  # noqa: D102
        return redact(f"mlflow at {store_uri(self.registry_uri or self.tracking_uri)}")

    def _fail(self, action: str, exc: BaseException) -> ResourceError:
        # The first line of the store's message (SQLAlchemy appends the SQL and a link).
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        moved = "" if action.startswith(("read", "list", "connect", "wait", "end")) else "; no alias was moved"
        return ResourceError(redact(f"model registry ({self.location}): cannot {action}: {first}{moved}"))

    @property
    def _locked(self) -> bool:
        """True when :meth:`promotion_lock` serializes this store's promotions (a SQLite file)."""
        return mlflow_client.sqlite_lock_file(self.registry_uri or self.tracking_uri, "_") is not None

    def register(  # noqa: D102
        self,
        name: str,
        model_uri: str,
        run_id: str,
        tags: dict[str, str],
        takes_turn: bool = False,
        description: str = "",
    ) -> str:
        client = self._client
        from mlflow.exceptions import MlflowException

        if takes_turn and not self._locked:
            tags = {**tags, PROMOTING_TAG: "true"}
        try:
            if registered(client, name) is None:
                try:
                    client.create_registered_model(name)
                except MlflowException as exc:
                    if not already_exists(exc):  # else another training created it a moment ago
                        raise
            version = client.create_model_version(
                name, source=model_uri, run_id=run_id, tags=tags, description=description or None
            )
        except MlflowException as exc:
            raise self._fail(f"register {name!r}", exc) from safe_cause(exc)
        return str(version.version)

    def wait_turn(self, name: str, version: str) -> list[str]:  # noqa: D102
        if self._locked:
            return []
        client = self._client
        from mlflow.exceptions import MlflowException

        deadline = time.monotonic() + role.TURN_SECONDS
        try:
            # Ages on the registry's own clock: a version registered role.TURN_SECONDS before this one died.
            born = client.get_model_version(name, version).creation_timestamp
            while True:
                found = client.search_model_versions(f"name = '{name}' and tags.`{PROMOTING_TAG}` = 'true'")
                earlier = sorted(
                    (
                        int(v.version)
                        for v in found
                        if int(v.version) < int(version)
                        and ABANDONED_TAG not in v.tags
                        and born - v.creation_timestamp < role.TURN_SECONDS * 1000
                    ),
                )
                if not earlier or time.monotonic() >= deadline:
                    return [str(v) for v in earlier]
                time.sleep(0.2)
        except MlflowException as exc:
            raise self._fail(f"wait for the earlier promotions of {name!r}", exc) from safe_cause(exc)

    def end_turn(self, name: str, version: str) -> None:  # noqa: D102
        if self._locked:
            return
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            client.delete_model_version_tag(name, version, PROMOTING_TAG)
        except MlflowException as exc:
            if not not_found(exc):
                raise self._fail(f"end the promotion of {name} v{version}", exc) from safe_cause(exc)

    def aliases(self, name: str) -> dict[str, str]:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            # The registered model lists its aliases; only a missing model means "none".
            model = registered(client, name)
        except MlflowException as exc:
            raise self._fail(f"read the aliases of {name!r}", exc) from safe_cause(exc)
        return {} if model is None else {alias: str(version) for alias, version in model.aliases.items()}

    def version_tags(self, name: str, version: str) -> dict[str, str] | None:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            return dict(client.get_model_version(name, version).tags)
        except MlflowException as exc:
            if not_found(exc):
                return None
            raise self._fail(f"read {name} v{version}", exc) from safe_cause(exc)

    def set_alias(self, name: str, alias: str, version: str) -> None:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            # The record first, so that an alias is never where Slipway put it without the
            # record saying so. If the move itself fails, the record is put back to where
            # the alias is (best effort: a registry that just failed may fail again).
            retried(client.set_registered_model_tag, name, ALIAS_RECORD_PREFIX + alias, version)
            try:
                retried(client.set_registered_model_alias, name, alias, version)
            except MlflowException:
                with contextlib.suppress(MlflowException):
                    current = registered(client, name).aliases.get(alias)
                    if current is None:
                        client.delete_registered_model_tag(name, ALIAS_RECORD_PREFIX + alias)
                    else:
                        client.set_registered_model_tag(name, ALIAS_RECORD_PREFIX + alias, str(current))
                raise
        except MlflowException as exc:
            raise self._fail(f"set alias {alias!r} of {name!r} to v{version}", exc) from safe_cause(exc)

    def delete_alias(self, name: str, alias: str) -> None:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            client.delete_registered_model_alias(name, alias)
            client.delete_registered_model_tag(name, ALIAS_RECORD_PREFIX + alias)
        except MlflowException as exc:
            if not not_found(exc):
                raise self._fail(f"remove alias {alias!r} of {name!r}", exc) from safe_cause(exc)

    def record_pin(self, name: str, alias: str, version: str | None) -> None:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            if version is None:
                client.delete_registered_model_tag(name, PIN_RECORD_PREFIX + alias)
            else:
                retried(client.set_registered_model_tag, name, PIN_RECORD_PREFIX + alias, version)
        except MlflowException as exc:
            if not not_found(exc):
                raise self._fail(f"record the pin of {alias!r} of {name!r}", exc) from safe_cause(exc)

    def alias_states(self, names: list[str]) -> dict[str, AliasState]:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        wanted, found = set(names), {}
        token = None
        if len(wanted) <= _FEW:  # a model or a few (a training's own check): read just those
            try:
                for name in sorted(wanted):
                    model = registered(client, name)
                    if model is not None:
                        found[name] = _alias_state(model)
            except MlflowException as exc:
                raise self._fail("read the aliases", exc) from safe_cause(exc)
            return found
        try:
            while wanted:
                page = client.search_registered_models(max_results=1000, page_token=token)
                for model in page:
                    if model.name in wanted:
                        found[model.name] = _alias_state(model)
                token = page.token
                if not token:
                    break
        except MlflowException as exc:
            raise self._fail("list the registered models", exc) from safe_cause(exc)
        return found

    def recorded_run(self, name: str, version: str) -> tuple[dict[str, str], dict[str, float]] | None:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(client.get_model_version(name, version).run_id)
        except MlflowException as exc:
            if not_found(exc):
                return None
            raise self._fail(f"read the training run of {name} v{version}", exc) from safe_cause(exc)
        return dict(run.data.params), dict(run.data.metrics)

    def versions_of_run(self, name: str, run_id: str) -> list[str]:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        except MlflowException as exc:
            raise self._fail(f"list the versions of {name!r}", exc) from safe_cause(exc)
        return sorted((str(v.version) for v in found), key=int)

    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        try:
            for key, value in tags.items():
                retried(client.set_model_version_tag, name, version, key, value)
        except MlflowException as exc:
            raise self._fail(f"tag {name} v{version}", exc) from safe_cause(exc)

    def run_file(self, name: str, version: str, path: str) -> bytes | None:  # noqa: D102
        client = self._client
        import tempfile

        from mlflow.exceptions import MlflowException

        try:
            run_id = client.get_model_version(name, version).run_id
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(run_id, path, tmp)
                return Path(local).read_bytes()
        except (MlflowException, OSError) as exc:
            if isinstance(exc, OSError) or not_found(exc) or "No such file" in str(exc):
                return None
            raise self._fail(f"read {path} of {name} v{version}", exc) from safe_cause(exc)

    def load(self, name: str, version: str) -> Any:  # noqa: D102
        import mlflow.sklearn

        return self._load(name, version, mlflow.sklearn.load_model)

    def load_pyfunc(self, name: str, version: str) -> Any:  # noqa: D102
        import mlflow.pyfunc

        return self._load(name, version, mlflow.pyfunc.load_model)

    def _load(self, name: str, version: str, loader: Any) -> Any:
        client = self._client
        source = client.get_model_version_download_uri(name, version)
        if not source.startswith(("mlflow-artifacts:", "http:", "https:")):
            return loader(source)
        # Artifacts served by a tracking server: MLflow would resolve this URI against its
        # global tracking URI, which is not this registry's. Download through our own.
        import tempfile

        import mlflow.artifacts

        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=store_uri(self.tracking_uri)
            )
            return loader(local)

    def check(self, name: str, version: str) -> tuple[str | None, Path | None]:  # noqa: D102
        client = self._client
        from mlflow.exceptions import MlflowException

        where = redact(self.registry_uri or self.tracking_uri)
        try:
            # One read for what Slipway registers (a concrete artifact URI as the source); a
            # source that is itself a reference (runs:/, models:/) is resolved with a second.
            found = client.get_model_version(name, version)
            abandoned, source = found.tags.get(ABANDONED_TAG), found.source
            if source.startswith(("runs:", "models:")):
                source = client.get_model_version_download_uri(name, version)
        except MlflowException as exc:
            if not_found(exc):
                return f"{name} v{version} is not in the registry at {where}", None
            raise self._fail(f"read {name} v{version}", exc) from safe_cause(exc)
        if abandoned is not None:
            return f"{name} v{version} was abandoned ({abandoned})", None
        local = _local_path(source)
        if local is not None and not local.exists():
            return f"the files of {name} v{version} are gone ({local})", local
        return None, local

    def unloadable(self, name: str, version: str) -> str | None:  # noqa: D102
        problem, local = self.check(name, version)
        if problem is not None:
            return problem
        if local is not None:
            found = (local / "MLmodel").is_file()
            return None if found else f"the files of {name} v{version} are gone ({local / 'MLmodel'})"
        client = self._client
        try:
            import mlflow.artifacts

            source = client.get_model_version_download_uri(name, version)
            listed = mlflow.artifacts.list_artifacts(artifact_uri=source, tracking_uri=store_uri(self.tracking_uri))
        except Exception as exc:  # MLflow's, or the object store's own (an S3 bucket that does not answer)
            raise self._fail(f"list the files of {name} v{version}", exc) from safe_cause(exc)
        if any(Path(entry.path).name == "MLmodel" for entry in listed):
            return None
        return f"the files of {name} v{version} are gone ({redact(source)})"

    @contextlib.contextmanager
    def promotion_lock(self, name: str) -> Iterator[None]:  # noqa: D102
        path = mlflow_client.sqlite_lock_file(self.registry_uri or self.tracking_uri, name)
        if path is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            # Blocks until the other promotion of this model is decided; the kernel releases the
            # lock if its holder dies, so a killed run never leaves it held.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# Up to this many models, their aliases are read one by one; more, with one search of them all.
_FEW = 8


def _alias_state(model: Any) -> AliasState:
    """A registered model's aliases, the versions Slipway recorded setting them to, and the pins it honoured."""
    tags = model.tags or {}

    def prefixed(prefix: str) -> dict[str, str]:
        return {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}

    aliases = {a: str(v) for a, v in model.aliases.items()}
    return AliasState(aliases, prefixed(ALIAS_RECORD_PREFIX), prefixed(PIN_RECORD_PREFIX))


def _local_path(uri: str) -> Path | None:
    """The local path of a ``file:`` URI or a plain path; None for remote artifact stores."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None
