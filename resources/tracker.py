"""Experiment tracking: the :class:`ExperimentTracker` role and its MLflow implementation."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import dagster as dg

from resources import mlflow_client
from resources.errors import ResourceError
from resources.mlflow_errors import already_exists
from resources.mlflow_store import store_uri
from resources.redact import redact, safe_cause
from resources.settings import MlflowTrackerSettings


@dataclass(frozen=True)
class TrackedRun:
    """A run in the tracker."""

    run_id: str
    experiment_id: str
    artifact_uri: str


@dataclass(frozen=True)
class FoundRun:
    """A run found by its tags: its status (``FINISHED``, ``FAILED``, ``RUNNING``), tags and metrics."""

    run: TrackedRun
    status: str
    tags: dict[str, str]
    metrics: dict[str, float]
    start_time_ms: int


class ExperimentTracker(dg.ConfigurableResource, ABC):
    """Records one run per model training: params, metrics, tags, inputs and the model."""

    def prepare(self) -> None:
        """Start connecting in the background: a training is about to begin.

        Training releases the GIL for most of its time, so set-up work started here runs on
        the other core instead of before or after the training.
        """

    @abstractmethod
    def start_run(
        self, experiment: str, run_name: str, tags: dict[str, str], start_time_ms: int | None = None
    ) -> TrackedRun:
        """Open a run in ``experiment`` (created if missing), started at ``start_time_ms``."""

    @abstractmethod
    def log(self, run: TrackedRun, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]) -> None:
        """Record params, metrics and tags in one call."""

    @abstractmethod
    def log_dataset(
        self, run: TrackedRun, name: str, digest: str, source: str, schema: dict[str, str], context: str = "training"
    ) -> None:
        """Record one of the run's inputs (``training`` or ``evaluation``) with its content digest."""

    @abstractmethod
    def log_model(self, run: TrackedRun, model: Any, example: Any, prediction: Any) -> str:
        """Store the fitted model (with signature and input example); return its URI."""

    @abstractmethod
    def log_file(self, run: TrackedRun, path: str, data: bytes) -> None:
        """Store ``data`` as the run's artifact ``path`` (``folder/name``)."""

    @abstractmethod
    def end_run(self, run: TrackedRun, ok: bool) -> None:
        """Close the run as finished or failed."""

    @abstractmethod
    def unfinished_runs(self, experiment: str, tags: dict[str, str]) -> list[tuple[TrackedRun, dict[str, str]]]:
        """The runs of ``experiment`` still marked running whose tags include ``tags``, with all their tags."""

    @abstractmethod
    def find_runs(self, experiment: str, tags: dict[str, str]) -> list[FoundRun]:
        """Every run of ``experiment`` whose tags include ``tags``, the latest first."""

    @abstractmethod
    def set_parent(self, parent: TrackedRun, children: list[str]) -> None:
        """Show the runs ``children`` nested under ``parent`` (in MLflow's UI: its ``mlflow.parentRunId``)."""

    @abstractmethod
    def run_url(self, run: TrackedRun) -> str:
        """A link to the run for people (the tracker's UI)."""

    def artifact_url(self, run: TrackedRun, path: str) -> str:
        """A link that opens one of the run's artifacts (the run's link where the UI cannot)."""
        return self.run_url(run)

    def version_url(self, name: str, version: str) -> str | None:
        """A link to version ``version`` of registered model ``name`` for people, or None without a UI for it."""
        return None


class MlflowTracker(ExperimentTracker, MlflowTrackerSettings):
    """MLflow over an explicit ``MlflowClient`` (never MLflow's global fluent state).

    Stack YAML::

        experiment_tracker:
          type: mlflow
          tracking_uri: sqlite:///${SLIPWAY_HOME}/mlflow.db
          artifact_location: ${SLIPWAY_HOME}/mlartifacts
          ui_url: http://127.0.0.1:5000
    """

    def prepare(self) -> None:  # noqa: D102
        mlflow_client.prewarm(self.tracking_uri)

    @property
    def _client(self) -> Any:
        try:
            return mlflow_client.client(self.tracking_uri)
        except Exception as exc:  # the store cannot be opened (a database that is down, a bad URI)
            raise self._fail("connect", exc) from safe_cause(exc)

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        # A kind MLflow's UI declares (ExperimentKind in mlflow/server/js/build/static/js/main.*.js);
        # the UI reads this tag only while its workflow-type feature flag is off. MLflow 3.17 ships
        # it on: the view (GenAI / Model training) follows the link's `workflowType` URL parameter
        # (`machine_learning` opens the training runs), else the browser's last choice, at first GenAI.
        tag, kind = "mlflow.experimentKind", "custom_model_development"
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            if tag not in found.tags:  # created by plain MLflow or before Slipway tagged it
                self._client.set_experiment_tag(found.experiment_id, tag, kind)
            return str(found.experiment_id)
        location = None
        if self.artifact_location:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", self.artifact_location):  # s3://, gs://, file://…
                location = f"{self.artifact_location.rstrip('/')}/{name}"
            else:  # a local folder
                location = Path(self.artifact_location).expanduser().resolve().joinpath(name).as_uri()
        try:
            return str(self._client.create_experiment(name, artifact_location=location, tags={tag: kind}))
        except MlflowException:  # created concurrently by another step
            return str(self._client.get_experiment_by_name(name).experiment_id)

    def start_run(  # noqa: D102
        self, experiment: str, run_name: str, tags: dict[str, str], start_time_ms: int | None = None
    ) -> TrackedRun:
        client = self._client  # first: it waits for the warm-up before anything imports MLflow
        try:
            experiment_id = self._experiment_id(experiment)
            run = client.create_run(experiment_id, start_time=start_time_ms, run_name=run_name, tags=tags)
        except Exception as exc:
            raise self._fail("start a run", exc) from safe_cause(exc)
        return TrackedRun(run.info.run_id, experiment_id, run.info.artifact_uri)

    def _fail(self, action: str, exc: BaseException) -> ResourceError:
        # The first line of the store's message (SQLAlchemy appends the SQL and a link).
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # The URI MLflow opened (a bare postgresql:// names its driver), its password hidden.
        message = f"experiment tracker (mlflow at {store_uri(self.tracking_uri)}): cannot {action}: {first}"
        return ResourceError(redact(message))

    def log(self, run: TrackedRun, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]) -> None:  # noqa: D102
        mlflow_client.ready()  # no MLflow import beside a warm-up in flight
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        client = self._client
        try:
            client.log_batch(
                run.run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                tags=[RunTag(k, str(v)) for k, v in tags.items()],
            )
        except Exception as exc:
            raise self._fail("log params and metrics", exc) from safe_cause(exc)

    def log_dataset(  # noqa: D102
        self, run: TrackedRun, name: str, digest: str, source: str, schema: dict[str, str], context: str = "training"
    ) -> None:
        mlflow_client.ready()  # no MLflow import beside a warm-up in flight
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(
            name=name,
            digest=digest,
            source_type="slipway",
            source=json.dumps({"uri": source}),
            schema=json.dumps({"mlflow_colspec": [{"name": k, "type": v} for k, v in schema.items()]}),
        )
        client = self._client
        inputs = [DatasetInput(dataset, [InputTag("mlflow.data.context", context)])]
        for attempt in range(3):
            try:
                client.log_inputs(run.run_id, inputs)
                return
            except Exception as exc:
                # Two runs logging the same new dataset at once (two homes on one server): MLflow's
                # read-then-insert loses the race on the dataset's unique key; tried again, it finds it.
                if attempt < 2 and already_exists(exc):
                    continue
                raise self._fail(f"log the {context} input", exc) from safe_cause(exc)

    def log_model(self, run: TrackedRun, model: Any, example: Any, prediction: Any) -> str:  # noqa: D102
        mlflow_client.ready()  # no MLflow import beside a warm-up in flight
        import mlflow.sklearn
        from mlflow.models import infer_signature

        signature = infer_signature(example, prediction)
        kwargs: dict[str, Any] = {
            "signature": signature,
            "input_example": example,
            # Given requirements skip MLflow's 3-4 s inference of the environment.
            "pip_requirements": _requirements(model),
            "serialization_format": self.serialization,
        }
        if self.serialization == "skops":
            kwargs["skops_trusted_types"] = list(self.skops_trusted_types)
        # MLflow warns on every cloudpickle save and when pip is absent from the venv; the
        # format is a stack setting chosen on purpose and the requirements are given.
        for noisy in ("mlflow.sklearn", "mlflow.utils.environment"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        from mlflow.exceptions import MlflowException

        parsed = urlparse(run.artifact_uri)
        try:
            if parsed.scheme in ("", "file"):
                # Local artifact store: write the model in place instead of saving and copying it.
                target = Path(unquote(parsed.path)) / "model"
                target.parent.mkdir(parents=True, exist_ok=True)
                mlflow.sklearn.save_model(model, str(target), **kwargs)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    mlflow.sklearn.save_model(model, os.path.join(tmp, "model"), **kwargs)
                    self._client.log_artifacts(run.run_id, os.path.join(tmp, "model"), "model")
        except Exception as exc:
            untrusted = str(exc).partition("Untrusted types found in the file: ")[2]
            if not isinstance(exc, MlflowException) or not untrusted:
                raise self._fail("store the model", exc) from safe_cause(exc)
            raise ResourceError(
                f"experiment tracker (mlflow): skops will not save a {type(model).__name__} holding "
                f"untrusted types {untrusted.strip().rstrip('.')}; add them to experiment_tracker.skops_trusted_types "
                "in the stack, or use `serialization: cloudpickle`"
            ) from exc
        return f"{run.artifact_uri}/model"

    def log_file(self, run: TrackedRun, path: str, data: bytes) -> None:  # noqa: D102
        mlflow_client.ready()
        folder, _, name = path.rpartition("/")
        client = self._client
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            local.write_bytes(data)
            try:
                client.log_artifact(run.run_id, str(local), artifact_path=folder or None)
            except Exception as exc:
                raise self._fail(f"store {path}", exc) from safe_cause(exc)

    def end_run(self, run: TrackedRun, ok: bool) -> None:  # noqa: D102
        client = self._client
        try:
            client.set_terminated(run.run_id, status="FINISHED" if ok else "FAILED")
        except Exception as exc:
            raise self._fail(f"close run {run.run_id[:8]}", exc) from safe_cause(exc)

    def unfinished_runs(self, experiment: str, tags: dict[str, str]) -> list[tuple[TrackedRun, dict[str, str]]]:  # noqa: D102
        client = self._client

        clauses = ["attributes.status = 'RUNNING'", *(f"tags.`{k}` = '{v}'" for k, v in tags.items())]
        try:
            found = client.get_experiment_by_name(experiment)
            runs = [] if found is None else client.search_runs([found.experiment_id], " and ".join(clauses))
        except Exception as exc:
            raise self._fail("list unfinished runs", exc) from safe_cause(exc)
        return [(TrackedRun(r.info.run_id, r.info.experiment_id, r.info.artifact_uri), dict(r.data.tags)) for r in runs]

    def find_runs(self, experiment: str, tags: dict[str, str]) -> list[FoundRun]:  # noqa: D102
        client = self._client
        clauses = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        found: list[FoundRun] = []
        try:
            known = client.get_experiment_by_name(experiment)
            token = None
            while known is not None:
                page = client.search_runs(
                    [known.experiment_id],
                    clauses,
                    max_results=1000,
                    order_by=["attributes.start_time DESC"],
                    page_token=token,
                )
                found += [
                    FoundRun(
                        TrackedRun(r.info.run_id, r.info.experiment_id, r.info.artifact_uri),
                        r.info.status,
                        dict(r.data.tags),
                        dict(r.data.metrics),
                        int(r.info.start_time or 0),
                    )
                    for r in page
                ]
                token = page.token
                if not token:
                    break
        except Exception as exc:
            raise self._fail("search runs", exc) from safe_cause(exc)
        return found

    def set_parent(self, parent: TrackedRun, children: list[str]) -> None:  # noqa: D102
        client = self._client
        try:
            for child in children:
                client.set_tag(child, "mlflow.parentRunId", parent.run_id)
        except Exception as exc:
            raise self._fail("nest the trials' runs", exc) from safe_cause(exc)

    def run_url(self, run: TrackedRun) -> str:  # noqa: D102
        # MLflow 3.17's UI opens the GenAI view unless the link asks for the training runs (it reads
        # `workflowType`, not the experiment's kind tag, to choose).
        path = f"/#/experiments/{run.experiment_id}/runs/{run.run_id}?workflowType=machine_learning"
        # A password in the UI address is for the browser to ask for, not for a stored link.
        return redact(self.ui_url.rstrip("/")) + path

    def artifact_url(self, run: TrackedRun, path: str) -> str:  # noqa: D102
        # MLflow's UI opens an artifact from its path after /artifacts/ (an HTML one rendered in place).
        base, _, query = self.run_url(run).partition("?")
        return f"{base}/artifacts/{path}" + (f"?{query}" if query else "")

    def version_url(self, name: str, version: str) -> str | None:  # noqa: D102
        # The registry's pages sit outside the experiments: no workflow type to choose.
        return f"{redact(self.ui_url.rstrip('/'))}/#/models/{quote(name, safe='')}/versions/{quote(str(version))}"


def _requirements(model: Any) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    packages = {"scikit-learn", "cloudpickle", "pandas", "numpy"}
    root = type(model).__module__.split(".")[0]
    packages.add({"sklearn": "scikit-learn"}.get(root, root))
    pins = []
    for name in sorted(packages):
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins
