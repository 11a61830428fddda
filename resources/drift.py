"""Drift detection: the :class:`DriftDetector` role and a statistical implementation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import dagster as dg


class DriftDetector(dg.ConfigurableResource, ABC):
    """Scores how far each column of ``current`` has moved from ``reference``."""

    @abstractmethod
    def scores(self, reference: Any, current: Any, method: str) -> dict[str, float]:
        """Column -> drift score (higher is more drift)."""


class StatisticalDriftDetector(DriftDetector):
    """Two-sample Kolmogorov-Smirnov statistic or population stability index, per numeric column.

    Stack YAML::

        drift_detector: {type: statistical, bins: 10}
    """

    bins: int = 10

    def scores(self, reference: Any, current: Any, method: str) -> dict[str, float]:  # noqa: D102
        import numpy as np

        out: dict[str, float] = {}
        for column in reference.columns:
            ref = reference[column].to_numpy()
            cur = current[column].to_numpy()
            if not (np.issubdtype(ref.dtype, np.number) and np.issubdtype(cur.dtype, np.number)):
                continue
            ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
            if len(ref) == 0 or len(cur) == 0:
                continue
            out[str(column)] = _ks(ref, cur) if method == "ks" else _psi(ref, cur, self.bins)
        return out


def _ks(ref: Any, cur: Any) -> float:
    """The KS statistic: the largest gap between the two empirical CDFs."""
    import numpy as np

    ref, cur = np.sort(ref), np.sort(cur)
    grid = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, grid, side="right") / len(ref)
    cdf_cur = np.searchsorted(cur, grid, side="right") / len(cur)
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def _psi(ref: Any, cur: Any, bins: int) -> float:
    import numpy as np

    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.all(cur == ref[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(ref, edges)[0] / len(ref)
    actual = np.histogram(cur, edges)[0] / len(cur)
    expected, actual = np.clip(expected, 1e-6, None), np.clip(actual, 1e-6, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
