"""Where the declared pipelines live."""

from pathlib import Path

DEFS_DIR = Path(__file__).resolve().parent / "defs"
