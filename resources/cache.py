"""Small JSON caches under ``$SLIPWAY_HOME/cache``: answers derived from installed libraries, kept between processes.

Each entry is an answer that depends only on its key and on what the file's name says (a
library's version), so a stale file cannot exist; deleting one costs the time to answer again.
A file is written whole under another name, then renamed: two processes writing at once keep
one of two equal answers, and a failure to write (a full disk, a read-only home) costs time only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_open: dict[Path, JsonCache] = {}


class JsonCache:
    """One cache file, read once per process."""

    def __init__(self, path: Path) -> None:
        """Read ``path`` (empty when it is missing or unreadable)."""
        self.path = path
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError):
            loaded = {}
        self.known: dict[str, Any] = loaded if isinstance(loaded, dict) else {}

    def keep(self, key: str, value: Any) -> None:
        """Remember ``value`` for ``key``, here and in the file."""
        self.known[key] = value
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_name(f"{self.path.name}.{os.getpid()}")
            scratch.write_text(json.dumps(self.known, sort_keys=True))
            os.replace(scratch, self.path)
        except OSError:
            pass


def cache(name: str) -> JsonCache:
    """The cache file ``$SLIPWAY_HOME/cache/<name>.json`` of this process."""
    from resources.paths import slipway_home

    path = slipway_home() / "cache" / f"{name}.json"
    if path not in _open:
        _open[path] = JsonCache(path)
    return _open[path]
