"""Transforms for tests (a project module: ``transform: transforms:NAME`` with ``transforms`` allowed)."""

from __future__ import annotations

from typing import Any


def to_array(frame: Any) -> Any:
    """Return the table as a NumPy array (not a DataFrame: a transform that breaks its contract)."""
    return frame.to_numpy()
