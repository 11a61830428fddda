"""Train and evaluate one model: features, deterministic split, fit, holdout metrics.

Pure ML, no Dagster and no tracker: the model asset wraps this with tracking, registration
and promotion.

The split is by a seeded hash of each row's id (``split.by``) or of its values, so a row's
side never depends on the other rows: data that grows by appended batches keeps every old
training row in training, and the rows a champion was tested on can be found again from its
recorded :class:`SplitRecord`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from assets.spec import metrics as metric_defs
from assets.spec.imports import ESTIMATOR, resolve
from assets.spec.model_spec import Model
from resources.errors import DataError, DefinitionError

SPLIT_SCHEME = "row-hash-v1"


@dataclass(frozen=True)
class SplitRecord:
    """How a model's rows were split, recorded with the model so the split can be recomputed."""

    by: str | None
    columns: tuple[str, ...]
    seed: int
    test_size: float
    scheme: str = SPLIT_SCHEME

    def to_json(self) -> str:
        """Canonical JSON, for a registry tag."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SplitRecord:
        """Parse :meth:`to_json`'s output; ``ValueError`` when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("scheme") != SPLIT_SCHEME:
            raise ValueError(f"not a {SPLIT_SCHEME} split record: {text[:80]}")
        return cls(data["by"], tuple(data["columns"]), int(data["seed"]), float(data["test_size"]))

    def test_mask(self, frame: Any) -> Any:
        """A boolean array: True for the rows of ``frame`` on the test side.

        Each value is encoded on its own, whatever the rest of its column holds (see
        :func:`_stable`), so a row keeps its side when a later batch changes a column's dtype.
        """
        import numpy as np
        import pandas as pd

        columns = [self.by] if self.by else list(self.columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"split columns {missing} are not in the dataset")
        normal = pd.DataFrame({c: _stable(frame[c]) for c in columns})
        hashes = pd.util.hash_pandas_object(normal, index=False).to_numpy()
        # pandas salts only text with its hash_key, so the seed is mixed in here for every dtype
        # (splitmix64's finalizer: each bit of the seed moves every bit of the result).
        salt = np.uint64(int.from_bytes(hashlib.blake2b(str(self.seed).encode(), digest_size=8).digest(), "big"))
        mixed = hashes ^ salt
        with np.errstate(over="ignore"):
            mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed ^= mixed >> np.uint64(31)
        unit = (mixed >> np.uint64(11)).astype(np.float64) / float(2**53)
        return unit < self.test_size


EVALUATION_SCHEME = "evaluation-set-v1"


TRAINING_ROWS_FILE = "slipway/training_rows.u64"


@dataclass(frozen=True)
class EvaluationRecord:
    """A model trained on every row of its dataset and scored on a declared evaluation set.

    Which rows it trained on cannot be recomputed from a seed, so they are stored with its run
    (:data:`TRAINING_ROWS_FILE`, :func:`row_hashes` of its training rows): a later comparison
    on an evaluation set leaves out every row the champion trained on.
    """

    evaluate_on: str
    columns: tuple[str, ...]
    scheme: str = EVALUATION_SCHEME

    def to_json(self) -> str:
        """Canonical JSON, for a registry tag."""
        return json.dumps(asdict(self), sort_keys=True)


def parse_record(text: str) -> SplitRecord | EvaluationRecord:
    """A recorded split or evaluation set; ``ValueError`` when ``text`` is neither."""
    data = json.loads(text)
    if isinstance(data, dict) and data.get("scheme") == EVALUATION_SCHEME:
        return EvaluationRecord(str(data["evaluate_on"]), tuple(data["columns"]))
    return SplitRecord.from_json(text)


_NULL = "\0null"


def row_hashes(frame: Any, columns: Sequence[str]) -> Any:
    """A sorted array of the distinct 64-bit hashes of ``frame``'s rows over ``columns``.

    Each value is encoded as :func:`_stable` encodes it, so a row hashes the same in any table
    whatever the dtypes of the other rows.
    """
    import numpy as np
    import pandas as pd

    normal = pd.DataFrame({c: _stable(frame[c]) for c in columns})
    return np.unique(pd.util.hash_pandas_object(normal, index=False).to_numpy())


def held_out(frame: Any, columns: Sequence[str], trained: Any) -> Any:
    """A boolean array: True for the rows of ``frame`` whose hash over ``columns`` is not in ``trained``."""
    import numpy as np
    import pandas as pd

    normal = pd.DataFrame({c: _stable(frame[c]) for c in columns})
    return ~np.isin(pd.util.hash_pandas_object(normal, index=False).to_numpy(), trained)


def _stable(column: Any) -> Any:
    """One encoding per value, whatever the column's dtype or its other values hold.

    Numbers and booleans become float64 (also when a missing value made the column ``object``,
    or it holds numbers as text), datetimes their UTC nanoseconds, categoricals their values,
    anything else text with one token for every missing value. Vectorized: this runs on every
    row of every training and comparison.
    """
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    if pd.api.types.is_datetime64_any_dtype(column):
        return pd.to_datetime(column, utc=True).astype("int64")
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    present = column.notna()
    flags = column.map({True: 1.0, False: 0.0}).where(column.map(lambda v: isinstance(v, bool)))
    numeric = pd.to_numeric(column.where(flags.isna(), flags), errors="coerce")
    if bool((numeric.notna() == present).all()):
        return numeric.astype("float64")
    return column.astype(str).where(present, _NULL)


@dataclass
class Holdout:
    """The split of one dataset."""

    x_train: Any
    x_test: Any
    y_train: Any
    y_test: Any
    record: SplitRecord | EvaluationRecord


@dataclass
class Trained:
    """A fitted model and its holdout metrics."""

    model: Any
    holdout: Holdout
    metrics: dict[str, float]
    params: dict[str, Any]


def feature_columns(frame: Any, spec: Model, where: str) -> list[str]:
    """The model's feature columns; :class:`DataError` naming the ones the dataset lacks."""
    if spec.target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise DataError(f"{where}: target column {spec.target!r} is not in the dataset (columns: {columns})")
    features = spec.features or [c for c in frame.columns if c != spec.target and c != spec.split.by]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: feature columns {missing} are not in the dataset")
    return [str(c) for c in features]


def split(frame: Any, spec: Model, where: str, evaluation: Any = None) -> Holdout:
    """Select features and target, then split by the seeded row hash.

    With an ``evaluation`` table (``evaluate_on``), every row of ``frame`` trains and the
    evaluation table's rows test.
    """
    if len(frame) == 0:
        raise DataError(f"{where}: the dataset {spec.dataset} has no rows")
    features = feature_columns(frame, spec, where)
    if evaluation is not None:
        wanted = [*features, spec.target]
        missing = [c for c in wanted if c not in evaluation.columns]
        if missing:
            raise DataError(f"{where}: the evaluation set {spec.evaluate_on} lacks columns {missing}")
        if len(evaluation) == 0:
            raise DataError(f"{where}: the evaluation set {spec.evaluate_on} has no rows")
        shared = [c for c in evaluation.columns if c in frame.columns]
        overlap = int((~held_out(evaluation, shared, row_hashes(frame, shared))).sum())
        if overlap:
            raise DataError(
                f"{where}: {overlap} rows of the evaluation set {spec.evaluate_on} are also in the training dataset "
                f"{spec.dataset} (the same values in every column both have); an evaluation set must be held out"
            )
        declared = EvaluationRecord(str(spec.evaluate_on), tuple(wanted))
        return Holdout(frame[features], evaluation[features], frame[spec.target], evaluation[spec.target], declared)
    if spec.split.by is not None and spec.split.by not in frame.columns:
        raise DataError(f"{where}: split.by column {spec.split.by!r} is not in the dataset")
    record = SplitRecord(spec.split.by, (*features, spec.target), spec.split.seed, spec.split.test_size)
    test = record.test_mask(frame)
    n_test = int(test.sum())
    if n_test == 0 or n_test == len(frame):
        side = "test" if n_test == 0 else "training"
        raise DataError(
            f"{where}: the split left no rows for {side} ({len(frame)} rows, test_size {spec.split.test_size}); "
            "add rows or change split.test_size"
        )
    x, y = frame[features], frame[spec.target]
    return Holdout(x[~test], x[test], y[~test], y[test], record)


def learner(spec: Model, allowed: Sequence[str], where: str) -> Callable[[Any, Any], Any]:
    """Resolve the estimator or training function now; return ``fit(x, y) -> model``.

    Resolving imports the user's code and scikit-learn's before training begins (and before
    any background work starts), so the training itself imports nothing new.
    """
    import sklearn.metrics  # noqa: F401  (evaluate() uses it right after training)

    if spec.estimator:
        cls = resolve(spec.estimator, allowed, where, ESTIMATOR)

        def fit_estimator(x: Any, y: Any) -> Any:
            try:
                model = cls(**spec.params)
            except TypeError as exc:
                raise DefinitionError(f"{where}: {spec.estimator}: {exc}") from exc
            try:
                return model.fit(x, y) or model
            except ValueError as exc:
                if "contains NaN" in str(exc):  # scikit-learn's words for an estimator that takes no NaN
                    raise DataError(f"{where}: {spec.estimator} {missing_values(x, y, spec.target)}") from None
                raise

        return fit_estimator
    fn = resolve(spec.train or "", allowed, where)
    return lambda x, y: fn(x, y, dict(spec.params))


def missing_values(x: Any, y: Any, target: str) -> str:
    """``takes no missing values (NaN): feature 'a' is missing in all 80 training rows; ...`` for ``x`` and ``y``."""
    rows = len(x)
    counts = [(f"feature {column!r}", int(n)) for column, n in x.isna().sum().items() if n]
    if int(y.isna().sum()):
        counts.append((f"target {target!r}", int(y.isna().sum())))
    said = [
        f"{what} is missing in {f'all {rows}' if n == rows else f'{n} of {rows}'} training rows" for what, n in counts
    ]
    return (
        f"takes no missing values (NaN): {'; '.join(said)}; fill them in the dataset (coalesce in its sql, a "
        "transform) or leave the features out"
    )


def fit(fit_fn: Callable[[Any, Any], Any], spec: Model, holdout: Holdout, where: str) -> tuple[Any, dict[str, Any]]:
    """Fit on the training rows; return the model and its params."""
    model = fit_fn(holdout.x_train, holdout.y_train)
    if not hasattr(model, "predict"):
        raise DefinitionError(f"{where}: the trained object ({type(model).__name__}) has no predict()")
    params = model.get_params(deep=False) if hasattr(model, "get_params") else dict(spec.params)
    return model, params


def evaluate(model: Any, metric_names: Sequence[str], x: Any, y: Any) -> dict[str, float]:
    """Compute ``metric_names`` for ``model`` on ``(x, y)``."""
    prediction = model.predict(x)
    score = None
    if any(metric_defs.METRICS[m].needs_proba for m in metric_names):
        if not hasattr(model, "predict_proba"):
            lacking = type(model).__name__
            raise DefinitionError(f"metrics {list(metric_names)} need predict_proba, which {lacking} lacks")
        score = model.predict_proba(x)
    classes = getattr(model, "classes_", None)
    try:
        return {name: metric_defs.compute(name, y, prediction, score, classes) for name in metric_names}
    except ValueError as exc:  # scikit-learn refuses these labels or rows for this metric
        kind = type(model).__name__
        raise DataError(f"cannot compute {list(metric_names)} for {kind} on {len(y)} rows: {exc}") from exc


def check_training_rows(spec: Model, holdout: Holdout, where: str) -> None:
    """Refuse training rows no estimator can learn from, with a message that says why."""
    y = holdout.y_train
    if len(y) == 0:
        raise DataError(
            f"{where}: no training rows (the dataset has {len(holdout.y_test)} rows, all in the test split)"
        )
    if spec.resolved_task == "classification":
        classes = y.dropna().unique()
        if len(classes) < 2:
            only = f" ({classes[0].item() if hasattr(classes[0], 'item') else classes[0]!r})" if len(classes) else ""
            raise DataError(
                f"{where}: target {spec.target!r} has one class{only} in the training rows; "
                "a classifier needs at least two"
            )
    if spec.estimator:  # a training function may encode text itself
        import pandas as pd

        for column in holdout.x_train.columns:
            values = holdout.x_train[column]
            if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
                numbers = pd.to_numeric(values, errors="coerce")
                bad = values[numbers.isna() & values.notna()]
                if len(bad):
                    raise DataError(f"{where}: feature {column!r} is not numeric (e.g. {bad.iloc[0]!r})")


def train(frame: Any, spec: Model, fit_fn: Callable[[Any, Any], Any], where: str, evaluation: Any = None) -> Trained:
    """Split (or take the ``evaluation`` table as the holdout), check the training rows, fit and evaluate."""
    holdout = split(frame, spec, where, evaluation)
    check_training_rows(spec, holdout, where)
    model, params = fit(fit_fn, spec, holdout, where)
    return Trained(model, holdout, evaluate(model, spec.metrics, holdout.x_test, holdout.y_test), params)
