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
# scikit-learn's scorer names with an explicit averaging, as users type them (f1_macro, ...).
AVERAGES = ("macro", "micro", "weighted")
METRICS.update({f"{base}_{average}": METRICS[base] for base in ("f1", "precision", "recall") for average in AVERAGES})
METRICS.update(
    {f"roc_auc_{scheme}{suffix}": METRICS["roc_auc"] for scheme in ("ovr", "ovo") for suffix in ("", "_weighted")}
)


def suggest(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest choice, or the list of valid ones."""
    choices = sorted(choices)
    return did_you_mean(name, choices) or (f"; valid: {', '.join(choices)}" if choices else "")


def compute(name: str, y_true: Any, y_pred: Any, y_score: Any, classes: Any = None) -> float:
    """Compute metric ``name``; ``y_score`` holds class probabilities (classification only).

    ``classes`` are the model's classes in order (``model.classes_``). Averaging: ``f1``,
    ``precision`` and ``recall`` are of the positive class (the second of two classes: ``1``,
    ``True``, or the later label in sort order, as scikit-learn orders them) on a binary target
    and the unweighted mean over classes (``macro``) on a multiclass one; ``roc_auc`` is of the
    positive class on a binary target and one-vs-rest macro on a multiclass one.
    ``f1_weighted``, ``precision_micro``, ``roc_auc_ovo_weighted`` and the like choose it.
    """
    import numpy as np
    from sklearn import metrics as m

    # Binary is a property of the model (the classes it learned), not of the rows scored: a
    # comparison set may hold two of three classes.
    if classes is None:
        classes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    binary = len(classes) == 2
    base, _, average = name.partition("_")
    if base in ("f1", "precision", "recall"):
        fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[base]
        chosen = average or ("binary" if binary else "macro")
        extra = {"pos_label": classes[1]} if chosen == "binary" else {}
        return float(fn(y_true, y_pred, average=chosen, zero_division=0, **extra))
    if name.startswith("roc_auc"):
        if binary:
            return float(m.roc_auc_score(y_true == classes[1], y_score[:, 1]))
        scheme = "ovo" if "_ovo" in name else "ovr"
        weighted = "weighted" if name.endswith("_weighted") else "macro"
        return float(m.roc_auc_score(y_true, y_score, multi_class=scheme, average=weighted, labels=classes))
    return _other(name, y_true, y_pred, y_score)


def _other(name: str, y_true: Any, y_pred: Any, y_score: Any) -> float:
    from sklearn import metrics as m

    if name == "accuracy":
        return float(m.accuracy_score(y_true, y_pred))
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
