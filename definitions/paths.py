"""Where the declared pipelines live."""

import os
from pathlib import Path

DEFS_DIR = Path(__file__).resolve().parent / "defs"
DEFS_ENV = "SLIPWAY_DEFS"


def defs_folder() -> Path:
    """The definitions folder: ``$SLIPWAY_DEFS`` (what ``--defs`` sets) or the project's ``definitions/defs``."""
    configured = os.environ.get(DEFS_ENV)
    return Path(configured).resolve() if configured else DEFS_DIR
