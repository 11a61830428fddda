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

from assets.spec.compute import ComputeResources, QueryLimits
from assets.spec.fields import ENV_VAR_PATTERN, IMPORT_PATH_PATTERN, INPUT_PATTERN, NAME_PATTERN, Closed
from assets.spec.graph import key_of
from assets.spec.metrics import suggest
from assets.spec.model_spec import Model
from assets.spec.partitions import Partitions, partition_problems
from assets.spec.scoring import Prediction, prediction_problems

# Environment variables that configure the orchestrator's own stores: never a pipeline's data.
_OWN_SETTINGS = ("SLIPWAY_", "DAGSTER_", "MLFLOW_")
SOURCE_KINDS = ("path", "sklearn", "generator", "sql")


class Source(Closed):
    """Where a dataset's rows come from: exactly one of ``path``, ``sklearn``, ``generator`` or ``sql``.

    - ``{path: data/*.csv}``: a CSV or Parquet file or glob, relative to the pipeline folder;
    - ``{sklearn: diabetes}``: a dataset bundled with scikit-learn (no download);
    - ``{generator: churn, rows: 5000, seed: 0}``: a seeded synthetic generator, a built-in
      name (``churn``, ``houses``, ``regression``) or ``module:function``;
    - ``{sql: "select ...", connection: CRM_DATABASE_URL}``: a query against a database, read
      through SQLAlchemy; the URL is taken only from the named environment variable, never
      from YAML. ``observe`` is an optional cheap query (``select max(updated_at) from t``)
      whose result stands for the data when looking for new rows; without it the whole
      result is read and hashed.
    """

    path: str | None = Field(
        default=None,
        description="File or glob in the project (relative to the pipeline's folder), in ${SLIPWAY_HOME} (the one "
        "variable expanded) or in a data root of the stack.",
    )
    format: Literal["csv", "parquet"] | None = Field(default=None, description="Inferred from the extension.")
    sklearn: Literal["diabetes", "breast_cancer", "iris", "wine"] | None = None
    generator: str | None = None
    rows: int | None = Field(default=None, gt=0, le=10_000_000, description="Generator rows (default 1000).")
    seed: int | None = Field(default=None, description="Generator seed (default 0).")
    params: dict[str, Any] | None = Field(default=None, description="Extra generator keyword arguments.")
    sql: str | None = Field(default=None, min_length=1, description="A query against the `connection` database.")
    connection: str | None = Field(
        default=None,
        pattern=ENV_VAR_PATTERN,
        description="Name of the environment variable holding the database URL (never the URL itself).",
    )
    observe: str | None = Field(
        default=None, min_length=1, description="A cheap query whose result changes when the data does."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        kinds = [k for k in SOURCE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a source needs exactly one of `path`, `sklearn`, `generator` or `sql`")
        if self.format is not None and self.path is None:
            raise ValueError("`format` goes with `path`")
        if self.generator is None and any(v is not None for v in (self.rows, self.seed, self.params)):
            raise ValueError("`rows`, `seed` and `params` go with `generator`")
        if self.sql is not None and self.connection is None:
            raise ValueError("a `sql` source needs `connection`: the name of the environment variable with its URL")
        if self.sql is None and (self.connection is not None or self.observe is not None):
            raise ValueError("`connection` and `observe` go with `sql`")
        return self

    @field_validator("path")
    @classmethod
    def _only_slipway_home(cls, path: str | None) -> str | None:
        # A path never reads the environment: an error, a log line or Dagster's record of the
        # run could otherwise carry a secret expanded into it.
        for found in re.finditer(r"\$(\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)", path or ""):
            if found.group(0) != "${SLIPWAY_HOME}":
                name = found.group(1).strip("{}")
                raise ValueError(
                    f"only ${{SLIPWAY_HOME}} is expanded in a path; ${name} is not (a path never reads the environment)"
                )
        return path

    @field_validator("connection", mode="before")
    @classmethod
    def _not_a_url(cls, value: Any) -> Any:
        if isinstance(value, str) and "://" in value:
            raise ValueError(
                "`connection` names an environment variable (e.g. CRM_DATABASE_URL) that holds the URL; "
                "a URL in YAML would put its password in git"
            )
        if isinstance(value, str) and value.startswith(_OWN_SETTINGS):
            raise ValueError(
                f"`connection` {value} is a setting of Slipway, Dagster or MLflow (their own stores), "
                "not a data source; name a variable of your own"
            )
        return value

    @property
    def kind(self) -> str:
        """``path``, ``sklearn``, ``generator`` or ``sql``."""
        return next(k for k in SOURCE_KINDS if getattr(self, k) is not None)


class Expectation(BaseModel):
    """One Great Expectations 1.x expectation: ``expect`` names it, the other keys are its arguments."""

    model_config = ConfigDict(extra="allow", frozen=True)

    expect: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="e.g. column_values_to_not_be_null")
    severity: Literal["error", "warn"] = Field(default="error", description="`error` blocks downstream assets.")

    @property
    def kwargs(self) -> dict[str, Any]:
        """The expectation's own arguments (everything but ``expect`` and ``severity``)."""
        return dict(self.model_extra or {})


class DriftCheck(Closed):
    """A drift check between the older and the newer half of a dataset's rows (file order)."""

    method: Literal["ks", "psi"] = "ks"
    threshold: float = Field(default=0.2, gt=0, description="Score above which a column counts as drifted.")
    columns: list[str] | None = Field(default=None, description="Columns to score; all numeric ones when omitted.")


def input_name(ref: str) -> str:
    """What a derived dataset's SQL and transform call an input: the last part of its key.

    ``customers`` and ``churn/customers`` are both ``customers``.
    """
    return ref.rsplit("/", 1)[-1]


class InputOptions(Closed):
    """How a derived dataset reads one of its inputs (``inputs: {events: {window: 7}}``, or ``{window: 30d}``)."""

    window: int | str | None = Field(
        default=None,
        description="Each partition reads this many partitions of the input, ending at its own (a rolling window), "
        "at most 99; or this much time of them (`30d`, `12h`: a whole number of the input's windows).",
    )

    @field_validator("window")
    @classmethod
    def _window(cls, window: int | str | None) -> int | str | None:
        from assets.spec.schedules import parse_duration

        if isinstance(window, int) and not 1 <= window <= 99:
            # Dagster records which partitions an input read (their data versions) up to 99 of them.
            raise ValueError(f"a window of {window} partitions: from 1 to 99")
        if isinstance(window, str):
            parse_duration(window)
        return window


class Dataset(Closed):
    """A dataset asset: read from a ``source``, or derived from other datasets' ``inputs``.

    Sourced: ``source`` and an optional ``transform: module:function(df) -> df``. Derived:
    ``inputs`` (datasets of this pipeline by name, or any asset of the code location by key,
    ``churn/customers``) and exactly one of ``sql`` (a query over the inputs by name, run by
    DuckDB in-process) or ``transform`` (``module:function(**inputs) -> df``, each input a
    keyword argument named as in the SQL). Either kind has expectations and drift checks.
    ``inputs`` is a list, or a mapping of each input to how it is read: ``{events: {window: 7},
    customers: null}`` (a partition reads the last 7 partitions of ``events`` up to its own).
    """

    source: Source | None = None
    inputs: list[str] | dict[str, InputOptions | None] | None = Field(
        default=None,
        min_length=1,
        description="Datasets (or `pipeline/name` asset keys) this one is built from; a mapping gives each options.",
    )
    sql: str | None = Field(default=None, min_length=1, description="A DuckDB query over the inputs, by name.")
    transform: str | None = Field(
        default=None, pattern=IMPORT_PATH_PATTERN, description="module:function(df) -> df, or (**inputs) -> df"
    )
    partitions: Partitions | None = Field(
        default=None,
        description="How a sourced dataset is split (time, static, discover); a derived one takes its inputs'.",
    )
    expectations: list[Expectation] = Field(default_factory=list)
    drift: DriftCheck | None = None
    resources: ComputeResources | None = Field(default=None, description="Its pod's size on the k8s stack.")
    limits: QueryLimits | None = Field(
        default=None, description="Memory and time limits of its `sql` query (the stack's when unset)."
    )
    description: str | None = None

    @field_validator("inputs")
    @classmethod
    def _inputs(
        cls, inputs: list[str] | dict[str, InputOptions | None] | None
    ) -> list[str] | dict[str, InputOptions | None] | None:
        for ref in inputs or []:
            if not re.match(INPUT_PATTERN, ref):
                raise ValueError(
                    f"input {ref!r} is neither a dataset name (lower_snake_case) nor an asset key (`pipeline/name`)"
                )
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", input_name(ref)):
                raise ValueError(f"input {ref!r}: {input_name(ref)!r} cannot name a table in SQL or an argument")
        names = [input_name(ref) for ref in inputs or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"two inputs are both called {twice[0]!r} in the SQL and the transform (an input is called by "
                "the last part of its key); derive one of them under another name first"
            )
        return inputs

    @model_validator(mode="after")
    def _one_kind(self) -> Dataset:
        if (self.source is None) == (self.inputs is None):
            raise ValueError("a dataset needs exactly one of `source` or `inputs`")
        if self.inputs is not None and (self.sql is None) == (self.transform is None):
            raise ValueError("a dataset with `inputs` needs exactly one of `sql` or `transform`")
        if self.sql is not None and self.inputs is None:
            raise ValueError(
                "`sql` goes with `inputs`: it queries other datasets by name "
                "(a query against a database is `source: {sql: ..., connection: ...}`)"
            )
        if self.limits is not None and self.sql is None:
            raise ValueError("limits apply to a `sql` query over inputs; this dataset has none")
        return self

    @property
    def derived(self) -> bool:
        """True when built from other datasets (``inputs``) rather than a source."""
        return self.inputs is not None

    @property
    def windows(self) -> dict[str, int | str]:
        """The inputs read over a window of partitions, and how many each (``{window: 7}``) or how long (``30d``).

        :func:`assets.spec.partitions.window_partitions` counts a window given in time.
        """
        if not isinstance(self.inputs, dict):
            return {}
        return {ref: o.window for ref, o in self.inputs.items() if o is not None and o.window is not None}


class PipelineSpec(Closed):
    """A whole pipeline: the ``attributes`` of one ``defs.yaml``."""

    name: str = Field(pattern=NAME_PATTERN, description="Pipeline name: the asset group and MLflow experiment.")
    description: str | None = None
    datasets: dict[str, Dataset] = Field(default_factory=dict)
    models: dict[str, Model] = Field(default_factory=dict)
    predictions: dict[str, Prediction] = Field(default_factory=dict)

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Rules across fields, as ``(location, message)`` so the loader can name the line."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for kind, names in (("datasets", self.datasets), ("models", self.models), ("predictions", self.predictions)):
            for key in names:
                if not re.match(NAME_PATTERN, key):
                    found.append(((kind, key), f"asset name {key!r} must be lower_snake_case"))
        for key in set(self.datasets) & set(self.models):
            found.append((("models", key), f"{key!r} names both a dataset and a model"))
        found += prediction_problems(self.predictions, self.datasets, self.models, self._unknown)
        for name, dataset in self.datasets.items():
            for index, ref in enumerate(dataset.inputs or []):
                at = ref if isinstance(dataset.inputs, dict) else index  # the line of the item, or of its key
                found += self._unknown(ref, ("datasets", name, "inputs", at), "input")
        found += partition_problems(self.datasets, self.models, self.predictions)
        for name, model in self.models.items():
            found += self._unknown(model.dataset, ("models", name, "dataset"), "dataset")
            drift = model.retrain.on_drift if model.retrain else None
            if drift is not None and drift.features and model.features is not None:
                for index, column in enumerate(drift.features):
                    if column not in model.features:
                        message = f"{column!r} is not among the model's features {model.features}"
                        found.append((("models", name, "retrain", "on_drift", "features", index), message))
            if model.evaluate_on is not None:
                found += self._unknown(model.evaluate_on, ("models", name, "evaluate_on"), "evaluation dataset")
                if key_of(self.name, model.evaluate_on) == key_of(self.name, model.dataset):
                    message = f"`evaluate_on` names the training dataset {model.dataset!r}; name a held-out one"
                    found.append((("models", name, "evaluate_on"), message))
        return found

    def _unknown(self, ref: str, loc: tuple[str | int, ...], what: str) -> list[tuple[tuple[str | int, ...], str]]:
        """A reference by name to this pipeline's datasets that names none (keys ``a/b`` are checked later)."""
        if "/" in ref or ref in self.datasets:
            return []
        if ref in self.models:
            return [(loc, f"{what} {ref!r} is a model; only datasets (tables) can be read")]
        return [(loc, f"unknown {what} {ref!r}{suggest(ref, self.datasets)}")]
