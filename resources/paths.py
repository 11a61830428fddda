"""Where local state lives: ``$SLIPWAY_HOME``, default ``.slipway/`` in the project."""

from __future__ import annotations

import os
from pathlib import Path

from resources.errors import StackError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Dagster writes its SQLite URLs as ``sqlite:///<path>`` without escaping, and MLflow parses its
# own: in a path these characters would be read as URL syntax (a query, a fragment, an escape).
_URL_SYNTAX = ("?", "#", "%")


def slipway_home() -> Path:
    """``$SLIPWAY_HOME``, default ``.slipway/`` in the project, as an absolute path.

    A home that cannot be one is a :class:`StackError` before anything is written: a path that
    holds URL syntax, or one where a file stands (the home itself or a folder above it).
    """
    home = Path(os.environ.get("SLIPWAY_HOME") or PROJECT_ROOT / ".slipway").expanduser().resolve()
    if any(mark in str(home) for mark in _URL_SYNTAX):
        raise StackError(
            f"SLIPWAY_HOME={home}: a home may not hold '?', '#' or '%' (the SQLite URLs of Dagster and MLflow "
            "would read them as URL syntax); choose another folder"
        )
    for folder in (home, *home.parents):
        if folder.exists():
            if not folder.is_dir():
                where = f"SLIPWAY_HOME={home}" + (f": {folder}" if folder != home else "")
                raise StackError(f"{where} is a file, not a folder")
            break
    return home
