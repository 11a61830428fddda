"""Drift detection: the :class:`DriftDetector` role and a statistical implementation.

A model's drift (``retrain.on_drift``) compares the newest data of its input with the data its
champion was trained on, feature by feature (:meth:`DriftDetector.compare`); a dataset's drift
check compares the older and the newer half of its rows (:meth:`DriftDetector.scores`).

The statistics, each a score where 0 is "the same distribution":

- ``psi``: population stability index, ``sum((cur - ref) * ln(cur / ref))`` over the
  reference's quantile bins (numeric) or over the categories (categorical); shares are floored
  at 1e-6 so that an empty bin counts as very different, not infinite.
- ``ks``: the two-sample Kolmogorov-Smirnov statistic, the largest gap between the two
  empirical CDFs (numeric only; scipy's ``ks_2samp(...).statistic``).
- ``chi2``: Cramer's V of the chi-square table (reference vs current counts per quantile bin or
  category): ``sqrt(chi2 / n)``, in 0..1 whatever the number of rows, where a p-value on a
  million rows calls every wobble significant.

Categorical features (text, booleans, categories) are scored by PSI under ``psi`` and by
Cramer's V under ``ks`` and ``chi2``. Missing values are dropped from numeric features and are
a category of their own in categorical ones.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from resources.errors import DataError
from resources.settings import StatisticalDriftSettings

_FLOOR = 1e-6


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift: its statistic, its score, and the shares the score was computed from."""

    feature: str
    kind: str  # "numeric" or "categorical"
    statistic: str  # "psi", "ks" or "chi2"
    score: float
    drifted: bool
    reference_rows: int
    current_rows: int
    bins: tuple[str, ...] = ()
    reference_share: tuple[float, ...] = ()
    current_share: tuple[float, ...] = ()
    # For people: equal-width histograms of a numeric feature (edges, then each sample's shares).
    histogram: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] | None = None


@dataclass(frozen=True)
class DriftResult:
    """The drift of a dataset: a row per feature and the dataset's score (its worst feature's)."""

    method: str
    threshold: float
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The largest feature score (0.0 with no feature)."""
        return max((f.score for f in self.features), default=0.0)

    @property
    def worst(self) -> str | None:
        """The feature with the largest score."""
        return max(self.features, key=lambda f: f.score).feature if self.features else None

    @property
    def drifted(self) -> bool:
        """True when the dataset's score is above the threshold."""
        return self.score > self.threshold

    def summary(self) -> str:
        """One line: the score against the threshold, and the drifted features."""
        drifted = [f.feature for f in self.features if f.drifted]
        verdict = f"drifted ({', '.join(drifted)})" if drifted else "no drift"
        score = f"{self.method} {self.score:.3f} vs threshold {self.threshold}"
        return f"{score} on {len(self.features)} features: {verdict}"


class DriftDetector(dg.ConfigurableResource, ABC):
    """Scores how far data has moved from a reference."""

    @abstractmethod
    def scores(self, reference: Any, current: Any, method: str) -> dict[str, float]:
        """Column -> drift score (higher is more drift), for every numeric column."""

    @abstractmethod
    def compare(
        self, reference: Any, current: Any, method: str, threshold: float, features: Sequence[str]
    ) -> DriftResult:
        """The drift of ``features`` of ``current`` from ``reference``; :class:`DataError` for a missing column."""


class StatisticalDriftDetector(DriftDetector, StatisticalDriftSettings):
    """PSI, Kolmogorov-Smirnov and chi-square (Cramer's V), computed with numpy.

    Features are scored in parallel threads (numpy sorts and searches outside the GIL; nothing
    is imported on them). Stack YAML::

        drift_detector: {type: statistical, bins: 10}
    """

    workers: int = 0  # 0: one per CPU

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
            ref, cur = np.sort(ref), np.sort(cur)
            out[str(column)] = ks_statistic(ref, cur) if method == "ks" else _psi(ref, cur, self.bins)
        return out

    def compare(  # noqa: D102
        self, reference: Any, current: Any, method: str, threshold: float, features: Sequence[str]
    ) -> DriftResult:
        for side, frame in (("reference", reference), ("current", current)):
            missing = [c for c in features if c not in frame.columns]
            if missing:
                raise DataError(f"drift features {missing} are not columns of the {side} data")
        import numpy  # noqa: F401  (imported here, once, before any worker thread runs)

        def one(name: str) -> FeatureDrift:
            return feature_drift(name, reference[name], current[name], method, threshold, self.bins)

        workers = min(len(features), self.workers or os.cpu_count() or 1)
        if workers <= 1:
            rows = [one(name) for name in features]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slipway-drift") as pool:
                rows = list(pool.map(one, features))
        return DriftResult(method, threshold, rows)


def is_numeric(series: Any) -> bool:
    """True for numbers (not booleans) and times: binned or compared by CDF; anything else is a category."""
    import pandas as pd

    kind = series.dtype
    return bool(
        (pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind))
        or pd.api.types.is_datetime64_any_dtype(kind)
    )


def _floats(series: Any) -> Any:
    """A numeric or datetime series as float64 (times as nanoseconds), missing values as NaN."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.to_numpy(dtype="datetime64[ns]")
        out = values.astype(np.int64).astype(np.float64)
        out[np.isnat(values)] = np.nan
        return out
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def feature_drift(name: str, reference: Any, current: Any, method: str, threshold: float, bins: int) -> FeatureDrift:
    """The drift of one feature (two pandas Series) under ``method``."""
    import numpy as np

    if is_numeric(reference) != is_numeric(current):
        raise DataError(
            f"drift feature {name!r} changed type: {reference.dtype} in the reference, {current.dtype} now "
            "(a schema change, not drift)"
        )
    if is_numeric(reference):
        ref, cur = _floats(reference), _floats(current)
        # Sorted once: the bins, their counts and the KS statistic are then searches, not passes.
        ref, cur = np.sort(ref[~np.isnan(ref)]), np.sort(cur[~np.isnan(cur)])
        if len(ref) == 0 or len(cur) == 0:
            side = "reference" if len(ref) == 0 else "current"
            raise DataError(f"drift feature {name!r}: no values in the {side} data")
        labels, ref_counts, cur_counts = _binned(ref, cur, bins)
        if method == "ks":
            score = ks_statistic(ref, cur)
        elif method == "chi2":
            score = cramers_v(ref_counts, cur_counts)
        else:
            score = psi(ref_counts, cur_counts)
        kind, statistic = "numeric", method
        histogram = _histogram(ref, cur)
    else:
        histogram = None
        labels, ref_counts, cur_counts = _categories(reference, current)
        if len(labels) == 0:
            raise DataError(f"drift feature {name!r}: no values")
        statistic = "psi" if method == "psi" else "chi2"
        score = psi(ref_counts, cur_counts) if statistic == "psi" else cramers_v(ref_counts, cur_counts)
        kind = "categorical"
    return FeatureDrift(
        feature=name,
        kind=kind,
        statistic=statistic,
        score=float(score),
        drifted=bool(score > threshold),
        reference_rows=int(ref_counts.sum()),
        current_rows=int(cur_counts.sum()),
        bins=tuple(labels),
        reference_share=tuple(float(x) for x in ref_counts / max(ref_counts.sum(), 1)),
        current_share=tuple(float(x) for x in cur_counts / max(cur_counts.sum(), 1)),
        histogram=histogram,
    )


def _histogram(ref: Any, cur: Any, bins: int = 30) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Equal-width histograms of two sorted samples over their common 0.5-99.5 % range (searches, no pass)."""
    import numpy as np

    def at(sample: Any, q: float) -> float:
        return float(sample[min(len(sample) - 1, int(q * (len(sample) - 1)))])

    low, high = min(at(ref, 0.005), at(cur, 0.005)), max(at(ref, 0.995), at(cur, 0.995))
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)

    def shares(sample: Any) -> tuple[float, ...]:
        counts = np.diff(np.searchsorted(sample, edges, side="left"))
        return tuple(float(x) for x in counts / len(sample))

    return tuple(float(e) for e in edges), shares(ref), shares(cur)


def quantile_edges(ref: Any, bins: int) -> Any:
    """The inner edges of ``bins`` quantile bins of the sorted sample ``ref`` (duplicates dropped).

    numpy's default (linear) quantiles, read off the sorted sample instead of partitioning it again.
    """
    import numpy as np

    index = np.linspace(0, 1, bins + 1)[1:-1] * (len(ref) - 1)
    low = np.floor(index).astype(np.int64)
    high = np.minimum(low + 1, len(ref) - 1)
    return np.unique(ref[low] + (ref[high] - ref[low]) * (index - low))


def _binned(ref: Any, cur: Any, bins: int) -> tuple[list[str], Any, Any]:
    """Counts of two sorted samples in the reference's quantile bins ``[a, b)``; the outer bins are open."""
    import numpy as np

    edges = quantile_edges(ref, bins)
    k = len(edges) + 1
    ref_counts = np.diff(np.concatenate([[0], np.searchsorted(ref, edges, side="left"), [len(ref)]]))
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(cur, edges, side="left"), [len(cur)]]))
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    labels = [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(k)]
    return labels, ref_counts, cur_counts


def _categories(reference: Any, current: Any) -> tuple[list[str], Any, Any]:
    """Counts per category of both samples (a missing value is the category ``(missing)``), most common first."""
    import numpy as np

    ref = reference.astype("string").fillna("(missing)").value_counts()
    cur = current.astype("string").fillna("(missing)").value_counts()
    both = ref.add(cur, fill_value=0).sort_values(ascending=False, kind="stable")
    labels = [str(v) for v in both.index]
    return (
        labels,
        ref.reindex(both.index, fill_value=0).to_numpy(dtype=np.int64),
        cur.reindex(both.index, fill_value=0).to_numpy(dtype=np.int64),
    )


def psi(ref_counts: Any, cur_counts: Any) -> float:
    """Population stability index of two count vectors over the same bins."""
    import numpy as np

    expected = np.clip(ref_counts / ref_counts.sum(), _FLOOR, None)
    actual = np.clip(cur_counts / cur_counts.sum(), _FLOOR, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def cramers_v(ref_counts: Any, cur_counts: Any) -> float:
    """Cramer's V of the 2 x k table (reference, current) x bins: ``sqrt(chi2 / n)``.

    Bins empty in both samples are dropped; one bin left is no drift (0.0).
    """
    import numpy as np

    table = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    return float(np.sqrt(chi2 / n))


def ks_statistic(ref: Any, cur: Any) -> float:
    """The two-sample KS statistic of two sorted samples.

    The gap between the two empirical CDFs can only peak at a sample point, so each CDF is
    evaluated at the last point of each run of equal values in either sample: two searches of
    sorted keys, where scipy searches the concatenation of both samples twice.
    """
    import numpy as np

    n, m = len(ref), len(cur)
    gap = 0.0
    for own, other, own_n, other_n in ((ref, cur, n, m), (cur, ref, m, n)):
        last = np.empty(len(own), dtype=bool)
        last[:-1] = own[1:] != own[:-1]
        last[-1] = True
        points = own[last]
        own_cdf = (np.flatnonzero(last) + 1) / own_n
        other_cdf = np.searchsorted(other, points, side="right") / other_n
        gap = max(gap, float(np.max(np.abs(own_cdf - other_cdf))))
    return gap


def _psi(ref: Any, cur: Any, bins: int) -> float:
    """PSI of two sorted numeric samples over ``ref``'s quantile bins (the dataset drift check's score)."""
    _labels, ref_counts, cur_counts = _binned(ref, cur, bins)
    return psi(ref_counts, cur_counts)
