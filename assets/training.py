"""Train and evaluate one model: features, seeded split, fit, holdout metrics.

Pure ML, no Dagster and no tracker: the model asset wraps this with tracking, registration
and promotion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assets import metrics as metric_defs
from assets.imports import resolve
from assets.schema import Model
from resources.errors import DataError, DefinitionError


@dataclass
class Holdout:
    """The seeded split of one dataset."""

    x_train: Any
    x_test: Any
    y_train: Any
    y_test: Any


@dataclass
class Trained:
    """A fitted model and its holdout metrics."""

    model: Any
    holdout: Holdout
    metrics: dict[str, float]
    params: dict[str, Any]


def split(frame: Any, spec: Model, where: str) -> Holdout:
    """Select features and target, then split with the definition's seed."""
    from sklearn.model_selection import train_test_split

    if spec.target not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise DataError(f"{where}: target column {spec.target!r} is not in the dataset (columns: {columns})")
    features = spec.features or [c for c in frame.columns if c != spec.target]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: feature columns {missing} are not in the dataset")
    x, y = frame[features], frame[spec.target]
    stratify = y if spec.split.stratify else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=spec.split.test_size, random_state=spec.split.seed, stratify=stratify
    )
    return Holdout(x_train, x_test, y_train, y_test)


def fit(spec: Model, holdout: Holdout, allowed: Sequence[str], where: str) -> tuple[Any, dict[str, Any]]:
    """Fit the estimator (or call the training function); return the model and its params."""
    if spec.estimator:
        cls = resolve(spec.estimator, allowed, where)
        try:
            model = cls(**spec.params)
        except TypeError as exc:
            raise DefinitionError(f"{where}: {spec.estimator}: {exc}") from exc
        model.fit(holdout.x_train, holdout.y_train)
    else:
        fn = resolve(spec.train or "", allowed, where)
        model = fn(holdout.x_train, holdout.y_train, dict(spec.params))
    if not hasattr(model, "predict"):
        raise DefinitionError(f"{where}: the trained object ({type(model).__name__}) has no predict()")
    params = model.get_params(deep=False) if hasattr(model, "get_params") else dict(spec.params)
    return model, params


def evaluate(model: Any, spec: Model, x: Any, y: Any) -> dict[str, float]:
    """Compute the definition's metrics on ``(x, y)``."""
    prediction = model.predict(x)
    score = None
    if any(metric_defs.METRICS[m].needs_proba for m in spec.metrics):
        if not hasattr(model, "predict_proba"):
            raise DefinitionError(f"metrics {spec.metrics} need predict_proba, which {type(model).__name__} lacks")
        score = model.predict_proba(x)
    return {name: metric_defs.compute(name, y, prediction, score) for name in spec.metrics}


def train(frame: Any, spec: Model, allowed: Sequence[str], where: str) -> Trained:
    """Split, fit and evaluate on the holdout."""
    holdout = split(frame, spec, where)
    model, params = fit(spec, holdout, allowed, where)
    return Trained(model, holdout, evaluate(model, spec, holdout.x_test, holdout.y_test), params)
