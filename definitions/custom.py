"""Python escape hatches that pipeline YAML may name (the ``definitions`` package is allowed).

- a transform, ``transform: definitions.custom:NAME``, takes the loaded DataFrame and returns
  a DataFrame;
- a training function, ``train: definitions.custom:NAME``, takes the training features, the
  target and the ``params`` mapping, and returns a fitted object with ``predict``.
"""

from __future__ import annotations

from typing import Any


def add_ratios(frame: Any) -> Any:
    """Add each numeric column divided by the first one (a small, deterministic transform)."""
    numeric = frame.select_dtypes("number")
    first = numeric.columns[0]
    ratios = {f"{c}_per_{first}": numeric[c] / numeric[first].where(numeric[first] != 0) for c in numeric.columns[1:3]}
    return frame.assign(**ratios).fillna(0.0)


def ridge(x_train: Any, y_train: Any, params: dict[str, Any]) -> Any:
    """Standardize, then fit a ridge regression with ``params`` (e.g. ``alpha``)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(**params)).fit(x_train, y_train)


def join_plans(features: Any, accounts: Any) -> Any:
    """A derived dataset's transform: each input is a keyword argument; join accounts' plans onto features."""
    return features.merge(accounts, on="customer_id", how="left")
