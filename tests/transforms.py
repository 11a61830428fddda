"""Transforms for tests (a project module: ``transform: transforms:NAME`` with ``transforms`` allowed)."""

from __future__ import annotations

from typing import Any


def to_array(frame: Any) -> Any:
    """Return the table as a NumPy array (not a DataFrame: a transform that breaks its contract)."""
    return frame.to_numpy()


def premium_flag(features: Any) -> Any:
    """A derived dataset's transform: its input ``features`` as a keyword argument, plus a column."""
    return features.assign(premium=(features["plan"] == "premium").astype(int))


def a_number(customers: Any) -> Any:
    """Returns a number instead of a DataFrame (a transform that breaks its contract)."""
    return len(customers)


def drop_tenure(customers: Any) -> Any:
    """Drops a column an expectation needs."""
    return customers.drop(columns=["tenure"])


def wrong_arguments(features: Any) -> Any:
    """Takes an argument no input is called."""
    return features


def totals_by_customer(customers: Any) -> Any:
    """A group-by whose key ends up in the index (pandas' default): it must not be lost."""
    return customers.groupby("customer_id")[["tenure"]].sum()


def missing_column(customers: Any) -> Any:
    """Raises a bare KeyError, as a typo in a transform does."""
    return customers["no_such_col"]


def ranked(customers: Any) -> Any:
    """A groupby-apply: the index is (customer_id's group key, an unnamed position level)."""
    return customers.groupby("contract_months", group_keys=True)[["tenure"]].apply(lambda g: g.head(2))


def indexed_twice(customers: Any) -> Any:
    """An index that repeats a column (set_index with drop=False)."""
    return customers.set_index("customer_id", drop=False)


def secret_failure(customers: Any) -> Any:
    """Fails with a URL holding a password in its message."""
    raise RuntimeError("cannot reach postgresql://bob:hunter2@db.example:5432/crm")


def path(path: Any) -> Any:
    """A transform whose input is called `path` (as the wrapper's own parameter is)."""
    return path


def slow_when_flagged(frame: Any) -> Any:
    """The frame as it is; sleeps for a minute first on the day the file ``$SLOW_DAY_FLAG`` names (a kill test)."""
    import os
    import time
    from pathlib import Path

    flag = Path(os.environ.get("SLOW_DAY_FLAG", "/nonexistent"))
    if flag.exists() and str(frame["day"].iloc[0]) == flag.read_text().strip():
        time.sleep(60)
    return frame


def fails_on_day(frame: Any) -> Any:
    """The frame as it is; raises ValueError on the day ``$FAIL_DAY`` names (a partition whose code fails)."""
    import os

    if str(frame["day"].iloc[0]) == os.environ.get("FAIL_DAY"):
        raise ValueError(f"no clicks can be counted on {os.environ['FAIL_DAY']}")
    return frame
