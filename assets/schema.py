"""The pipeline schema: what a ``defs.yaml`` may say, as closed pydantic models.

This module imports neither Dagster nor any ML library, so ``slipway validate`` and the
no-op path of ``slipway run`` stay fast. The Dagster component in
:mod:`assets.pipeline` uses the same models for its attributes, so ``dg check yaml`` and
``slipway validate`` accept exactly the same files.

Example (``definitions/defs/churn/defs.yaml``)::

    type: assets.Pipeline
    attributes:
      name: churn
      datasets:
        customers:
          source: {generator: churn, rows: 4000, seed: 0}
          expectations:
            - {expect: column_values_to_not_be_null, column: customer_id}
      models:
        churn_classifier:
          dataset: customers
          target: churned
          estimator: sklearn.ensemble.RandomForestClassifier
          params: {n_estimators: 100, max_depth: 8}
          metrics: [roc_auc, f1]
          promote: {gates: {roc_auc: ">= 0.75"}}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assets.metrics import METRICS, suggest

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
# A dataset of the same pipeline by name, or any asset of the code location by key (a/b).
INPUT_PATTERN = r"^([a-z][a-z0-9_]*|[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)+)$"
IMPORT_PATH_PATTERN = r"^[A-Za-z_][\w.]*([:.][A-Za-z_]\w*)$"
_GATE = re.compile(r"^\s*(>=|<=|>|<|==)\s*(-?[0-9.]+(?:[eE]-?[0-9]+)?)\s*$")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Closed):
    """Where a dataset's rows come from: exactly one of ``path``, ``sklearn`` or ``generator``.

    - ``{path: data/*.csv}``: a CSV or Parquet file or glob, relative to the pipeline folder;
    - ``{sklearn: diabetes}``: a dataset bundled with scikit-learn (no download);
    - ``{generator: churn, rows: 5000, seed: 0}``: a seeded synthetic generator, a built-in
      name (``churn``, ``houses``, ``regression``) or ``module:function``.
    """

    path: str | None = Field(default=None, description="File or glob; ${SLIPWAY_HOME} is expanded.")
    format: Literal["csv", "parquet"] | None = Field(default=None, description="Inferred from the extension.")
    sklearn: Literal["diabetes", "breast_cancer", "iris", "wine"] | None = None
    generator: str | None = None
    rows: int | None = Field(default=None, gt=0, le=10_000_000, description="Generator rows (default 1000).")
    seed: int | None = Field(default=None, description="Generator seed (default 0).")
    params: dict[str, Any] | None = Field(default=None, description="Extra generator keyword arguments.")

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        kinds = [k for k in ("path", "sklearn", "generator") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a source needs exactly one of `path`, `sklearn` or `generator`")
        if self.format is not None and self.path is None:
            raise ValueError("`format` goes with `path`")
        if self.generator is None and any(v is not None for v in (self.rows, self.seed, self.params)):
            raise ValueError("`rows`, `seed` and `params` go with `generator`")
        return self

    @property
    def kind(self) -> str:
        """``path``, ``sklearn`` or ``generator``."""
        return next(k for k in ("path", "sklearn", "generator") if getattr(self, k) is not None)


class Expectation(BaseModel):
    """One Great Expectations 1.x expectation: ``expect`` names it, the other keys are its arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)

    expect: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="e.g. column_values_to_not_be_null")
    severity: Literal["error", "warn"] = Field(default="error", description="`error` blocks downstream assets.")

    @property
    def kwargs(self) -> dict[str, Any]:
        """The expectation's own arguments (everything but ``expect`` and ``severity``)."""
        return dict(self.model_extra or {})


class DriftCheck(_Closed):
    """A drift check between the older and the newer half of a dataset's rows (file order)."""

    method: Literal["ks", "psi"] = "ks"
    threshold: float = Field(default=0.2, gt=0, description="Score above which a column counts as drifted.")
    columns: list[str] | None = Field(default=None, description="Columns to score; all numeric ones when omitted.")


class Dataset(_Closed):
    """A dataset asset: a source, an optional transform and data expectations."""

    source: Source
    transform: str | None = Field(default=None, pattern=IMPORT_PATH_PATTERN, description="module:function(df) -> df")
    expectations: list[Expectation] = Field(default_factory=list)
    drift: DriftCheck | None = None
    description: str | None = None


class Split(_Closed):
    """A deterministic train/test split: each row's side is decided by a seeded hash.

    The hash is of the ``by`` column when given (an id: every row of one customer stays on
    one side), else of the row's feature and target values. A row therefore keeps its side
    when rows are appended, so a champion and a challenger are compared only on rows neither
    trained on. The test share is ``test_size`` on average, not exactly.
    """

    test_size: float = Field(default=0.2, gt=0, lt=1, description="Share of rows (by hash) held out for testing.")
    seed: int = Field(default=0, description="Salt of the hash: another seed gives another split.")
    by: str | None = Field(default=None, description="Id column to split by; the whole row when omitted.")

    @model_validator(mode="before")
    @classmethod
    def _no_stratify(cls, data: Any) -> Any:
        if isinstance(data, dict) and "stratify" in data:
            raise ValueError(
                "`stratify` is gone: rows are split by a hash of `by` (or of the row) so that appended rows "
                "never move between train and test; class shares stay close to the data's. Remove the key"
            )
        return data


class Promote(_Closed):
    """When a newly trained version may take the alias."""

    alias: str = Field(default="champion", pattern=NAME_PATTERN)
    gates: dict[str, str] = Field(default_factory=dict, description='metric -> condition, e.g. roc_auc: ">= 0.75"')
    must_beat: str | None = Field(
        default="champion", description="Alias the new version must beat on rows neither trained on; null to skip."
    )

    @field_validator("gates")
    @classmethod
    def _gates_parse(cls, gates: dict[str, str]) -> dict[str, str]:
        for metric, condition in gates.items():
            if not _GATE.match(str(condition)):
                raise ValueError(f'gate {metric}: "{condition}" is not a condition like ">= 0.75"')
        return gates


class ComputeResources(_Closed):
    """Pod resources, used by the Kubernetes stack only."""

    cpu: str | None = None
    memory: str | None = None


class Model(_Closed):
    """A model asset: trained on a dataset, tracked and registered in the experiment tracker."""

    dataset: str = Field(
        pattern=INPUT_PATTERN,
        description="A dataset of this pipeline, or any asset of the code location by key (`team/table`).",
    )
    target: str
    features: list[str] | None = Field(default=None, description="Feature columns; all but the target when omitted.")
    estimator: str | None = Field(default=None, pattern=IMPORT_PATH_PATTERN, description="sklearn-API class")
    train: str | None = Field(default=None, pattern=IMPORT_PATH_PATTERN, description="module:function(X, y, params)")
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] | None = Field(
        default=None, description="Inferred from the first metric when omitted."
    )
    split: Split = Field(default_factory=Split)
    metrics: list[str] = Field(min_length=1)
    promote: Promote = Field(default_factory=Promote)
    resources: ComputeResources | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Model:
        if (self.estimator is None) == (self.train is None):
            raise ValueError("a model needs exactly one of `estimator` or `train`")
        for name in self.metrics:
            if name not in METRICS:
                raise ValueError(f"unknown metric {name!r}{suggest(name, METRICS)}")
        tasks = {METRICS[m].task for m in self.metrics}
        if len(tasks) > 1:
            raise ValueError(f"metrics mix classification and regression: {self.metrics}")
        if self.task is not None and tasks != {self.task}:
            raise ValueError(f"metrics {self.metrics} do not fit task {self.task!r}")
        for gate in self.promote.gates:
            if gate not in self.metrics:
                raise ValueError(f"gate on {gate!r}, which is not in metrics {self.metrics}")
        return self

    @property
    def resolved_task(self) -> str:
        """``classification`` or ``regression``."""
        return self.task or METRICS[self.metrics[0]].task


class PipelineSpec(_Closed):
    """A whole pipeline: the ``attributes`` of one ``defs.yaml``."""

    name: str = Field(pattern=NAME_PATTERN, description="Pipeline name: the asset group and MLflow experiment.")
    description: str | None = None
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    models: dict[str, Model] = Field(default_factory=dict)

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Rules across fields, as ``(location, message)`` so the loader can name the line."""
        found: list[tuple[tuple[str, ...], str]] = []
        for kind, names in (("datasets", self.datasets), ("models", self.models)):
            for key in names:
                if not re.match(NAME_PATTERN, key):
                    found.append(((kind, key), f"asset name {key!r} must be lower_snake_case"))
        for key in set(self.datasets) & set(self.models):
            found.append((("models", key), f"{key!r} names both a dataset and a model"))
        for name, model in self.models.items():
            if "/" not in model.dataset and model.dataset not in self.datasets:
                hint = suggest(model.dataset, self.datasets)
                found.append((("models", name, "dataset"), f"unknown dataset {model.dataset!r}{hint}"))
        return found


def parse_gate(condition: str) -> tuple[str, float]:
    """Split ``">= 0.75"`` into ``(">=", 0.75)``."""
    match = _GATE.match(condition)
    if match is None:  # schema validation has already rejected it
        raise ValueError(condition)
    return match.group(1), float(match.group(2))
