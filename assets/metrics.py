"""Metrics by name: which task they fit, which direction is better, how to compute them.

scikit-learn is imported only when a metric is computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from resources.errors import did_you_mean


@dataclass(frozen=True)
class Metric:
    """A named metric."""

    task: Literal["classification", "regression"]
    higher_is_better: bool
    needs_proba: bool = False


METRICS: dict[str, Metric] = {
    "accuracy": Metric("classification", True),
    "f1": Metric("classification", True),
    "precision": Metric("classification", True),
    "recall": Metric("classification", True),
    "roc_auc": Metric("classification", True, needs_proba=True),
    "log_loss": Metric("classification", False, needs_proba=True),
    "rmse": Metric("regression", False),
    "mse": Metric("regression", False),
    "mae": Metric("regression", False),
    "r2": Metric("regression", True),
}


def suggest(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest choice, or the list of valid ones."""
    choices = sorted(choices)
    return did_you_mean(name, choices) or (f"; valid: {', '.join(choices)}" if choices else "")


def compute(name: str, y_true: Any, y_pred: Any, y_score: Any) -> float:
    """Compute metric ``name``; ``y_score`` holds class probabilities (classification only)."""
    from sklearn import metrics as m

    binary = y_score is not None and getattr(y_score, "ndim", 1) == 2 and y_score.shape[1] == 2
    average = "binary" if binary else "macro"
    if name == "accuracy":
        return float(m.accuracy_score(y_true, y_pred))
    if name in ("f1", "precision", "recall"):
        fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[name]
        return float(fn(y_true, y_pred, average=average, zero_division=0))
    if name == "roc_auc":
        if binary:
            return float(m.roc_auc_score(y_true, y_score[:, 1]))
        return float(m.roc_auc_score(y_true, y_score, multi_class="ovr"))
    if name == "log_loss":
        return float(m.log_loss(y_true, y_score))
    if name == "mse":
        return float(m.mean_squared_error(y_true, y_pred))
    if name == "rmse":
        return float(m.mean_squared_error(y_true, y_pred) ** 0.5)
    if name == "mae":
        return float(m.mean_absolute_error(y_true, y_pred))
    if name == "r2":
        return float(m.r2_score(y_true, y_pred))
    raise KeyError(name)


def beats(name: str, challenger: float, champion: float) -> bool:
    """True when ``challenger`` is strictly better than ``champion`` on metric ``name``."""
    if METRICS[name].higher_is_better:
        return challenger > champion
    return challenger < champion
