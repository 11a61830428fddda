"""Derived datasets: a Python function over other datasets' tables.

A query (``sql``) is the stack's query engine's to run (:mod:`resources.query`); what is
here calls a transform with its inputs by name and makes sure it returned a table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from assets.spec.signatures import check_signature
from resources.errors import DataError, DefinitionError


def run_transform(fn: Callable[..., Any], path: str, inputs: Mapping[str, Any], where: str) -> Any:
    """Call ``fn`` with each input as a keyword argument; it must return a DataFrame."""
    check_signature(fn, path, list(inputs), where)
    return call_transform(fn, path, where, **inputs)


def call_transform(fn: Callable[..., Any], path: str, where: str, /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as a table (:func:`require_frame`); what it raises names it, in one line.

    The first three parameters are positional only: an input may be called ``path`` or ``where``.
    """
    from resources.errors import SlipwayError
    from resources.redact import redact, safe_cause

    try:
        result = fn(*args, **kwargs)
    except SlipwayError:
        raise
    except Exception as exc:
        message = redact(str(exc).splitlines()[0]) if str(exc) else ""
        raise DataError(f"{where}: transform {path} raised {type(exc).__name__}: {message}") from safe_cause(exc)
    return require_frame(result, path, where)


def require_frame(result: Any, path: str, where: str) -> Any:
    """``result`` as a plain table (:func:`as_table`) when it is a DataFrame; else a :class:`DefinitionError`."""
    import pandas as pd

    from resources.tables import as_table

    if not isinstance(result, pd.DataFrame):
        kind = type(result).__name__
        raise DefinitionError(f"{where}: transform {path} returned an object of type {kind}, not a pandas DataFrame")
    try:
        return as_table(result)
    except DataError as exc:
        raise DataError(f"{where}: transform {path} returned a table whose {str(exc).removeprefix('its ')}") from exc


def missing_columns(frame: Any, wanted: Mapping[str, list[str]]) -> list[str]:
    """``"column 'x' (needed by ...)"`` for each column a check needs that ``frame`` lacks."""
    have = {str(c) for c in frame.columns}
    return [f"{column!r} (needed by {', '.join(users)})" for column, users in wanted.items() if column not in have]
