"""Where local state lives: ``$SLIPWAY_HOME``, default ``.slipway/`` in the project."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def slipway_home() -> Path:
    """``$SLIPWAY_HOME``, default ``.slipway/`` in the project, as an absolute path."""
    return Path(os.environ.get("SLIPWAY_HOME") or PROJECT_ROOT / ".slipway").expanduser().resolve()
