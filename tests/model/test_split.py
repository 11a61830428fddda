"""The deterministic split: a row keeps its side when batches are appended, whatever their dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.model.training import SplitRecord


def _old() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 400
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.normal(size=rows),
            "flag": rng.random(rows) < 0.5,
            "count": rng.integers(0, 9, rows),
            "kind": pd.Categorical(rng.choice(["a", "b"], rows)),
            "day": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 30, rows), unit="D"),
            "city": rng.choice(["x", "y", "z"], rows).astype(object),
        }
    )


def _appended(old: pd.DataFrame) -> pd.DataFrame:
    # The new batch has a missing flag (bool -> object), a missing count (int -> float), a time of
    # day (dates print differently) and a new category.
    extra = pd.DataFrame(
        {
            "id": [1000, 1001],
            "x": [0.5, np.nan],
            "flag": [None, True],
            "count": [np.nan, 3],
            "kind": ["c", "a"],
            "day": pd.to_datetime(["2024-02-01 10:30", "2024-02-02"], format="ISO8601"),
            "city": [None, "x"],
        }
    )
    return pd.concat([old.astype({"kind": object}), extra], ignore_index=True)


def test_old_rows_keep_their_side_when_a_batch_changes_the_columns_dtypes():
    old = _old()
    new = _appended(old)
    assert new["flag"].dtype == object and new["count"].dtype == float
    for record in (
        SplitRecord(None, ("x", "flag", "count", "kind", "day", "city"), 0, 0.25),
        SplitRecord("id", ("x",), 3, 0.25),
    ):
        before, after = record.test_mask(old), record.test_mask(new)[: len(old)]
        assert 0.15 < before.mean() < 0.35
        assert (before == after).all()


def test_seed_and_test_size_change_the_split():
    old = _old()
    base = SplitRecord("id", ("x",), 0, 0.25).test_mask(old)
    assert (SplitRecord("id", ("x",), 1, 0.25).test_mask(old) != base).any()
    bigger = SplitRecord("id", ("x",), 0, 0.5).test_mask(old)
    assert (bigger | ~base).all()  # every row tested at 0.25 is still tested at 0.5
