"""Where the declared pipelines live: the ``definitions/defs`` of the project you stand in."""

import os
from pathlib import Path

from resources.errors import DefinitionError

DEFS_DIR = Path(__file__).resolve().parent / "defs"
DEFS_ENV = "SLIPWAY_DEFS"


def defs_folder(start: Path | None = None) -> Path:
    """``$SLIPWAY_DEFS`` (what ``--defs`` sets), else the ``definitions/defs`` of the project around ``start``.

    ``start`` defaults to the working directory: a command run inside one clone reads that
    clone's definitions, whichever checkout the ``slipway`` it runs was installed from. A
    folder with no ``definitions/defs`` in it or above it is no project: a
    :class:`DefinitionError` says so.
    """
    configured = os.environ.get(DEFS_ENV)
    if configured:
        return Path(configured).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "definitions" / "defs").is_dir():
            found = folder / "definitions" / "defs"
            return DEFS_DIR if found.resolve() == DEFS_DIR else found
    raise DefinitionError(
        f"{here}: not in a Slipway project (no definitions/defs folder here or above); "
        "run slipway inside the project, or give --defs FOLDER"
    )
