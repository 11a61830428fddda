"""Training functions that a model may name with ``train: definitions.training_examples:NAME``.

A training function receives the training features, the target and the ``params`` mapping,
and returns a fitted object with ``predict`` (scikit-learn API).
"""

from __future__ import annotations

from typing import Any


def ridge(x_train: Any, y_train: Any, params: dict[str, Any]) -> Any:
    """Standardize, then fit a ridge regression with ``params`` (e.g. ``alpha``)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(**params)).fit(x_train, y_train)
