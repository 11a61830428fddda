"""Local state of ``slipway run`` under ``$SLIPWAY_HOME``: the run lock and the no-op cache.

Neither is a record. The Dagster instance is the record of what was built, the registry of
what was registered; the cache only remembers that, at a given state of the definitions, the
source files, the event log and the MLflow store, the predicate found nothing to do. Any change
to any of them (a run launched from the UI, a deleted model version, a touched file) misses
the cache, and deleting it costs one slower run, never a wrong answer.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from definitions.cli.outcomes import AssetOutcome
from resources.errors import SlipwayError
from resources.paths import PROJECT_ROOT
from stacks import LoadedStack
from stacks.build import file_stamp, watermark

CACHE_FORMAT = 1
_PROJECT_PACKAGES = ("assets", "definitions", "resources", "stacks")


@contextmanager
def exclusive(home: Path) -> Iterator[None]:
    """Hold ``$SLIPWAY_HOME``'s run lock; fail at once if another ``slipway run`` holds it.

    Two runs on one home would race on the artifacts and the SQLite stores.
    """
    path = home / "state" / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SlipwayError(
                f"another `slipway run` or `slipway backfill` is using {home}; wait for it to finish or set "
                "SLIPWAY_HOME to another folder"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class NoopCache:
    """``$SLIPWAY_HOME/state/noop-<stack>.json``: the rows of the last run that left nothing to do."""

    def __init__(
        self,
        home: Path,
        loaded: LoadedStack,
        folder: Path,
        names: Sequence[str],
        sources: dict[str, Any],
        code_files: Sequence[Path] = (),
    ) -> None:
        """The cache of stack ``loaded`` for ``names`` of ``folder``.

        ``sources`` are the observed fingerprints, ``code_files`` the project modules the
        definitions name (a transform, say), wherever they live.
        """
        self.path = home / "state" / f"noop-{Path(loaded.name).stem}.json"
        self.loaded = loaded
        stack = loaded.stack
        code = sorted(
            file_stamp(path)
            for root in [folder, *(PROJECT_ROOT / p for p in _PROJECT_PACKAGES)]
            for path in root.rglob("*")
            if path.suffix in (".py", ".yaml", ".yml") and ".venv" not in path.parts
        ) + sorted(file_stamp(path) for path in code_files)
        self.inputs = hashlib.blake2b(
            json.dumps(
                {
                    "format": CACHE_FORMAT,
                    "stack": stack.model_dump(mode="json"),
                    "names": sorted(names),
                    "folder": str(folder),
                    "code": code,
                    "sources": sorted((k, v[0]) for k, v in sources.items()),
                },
                sort_keys=True,
            ).encode(),
            digest_size=16,
        ).hexdigest()

    def watermark(self) -> str | None:
        """The state of the stores the cache rests on; None when they cannot be read cheaply."""
        return watermark(self.loaded.stack)

    def replay(self) -> list[AssetOutcome] | None:
        """The reused rows, when nothing changed since the last run that left nothing to do."""
        try:
            cached = json.loads(self.path.read_text())
            if cached.get("inputs") != self.inputs or cached.get("watermark") != self.watermark():
                return None
            if not all(os.path.exists(f) for f in cached["files"]):
                return None
            if any(file_stamp(Path(path)) != stat for path, stat in cached["watched"].items()):
                return None
            return [AssetOutcome(**row) for row in cached["rows"]]
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None  # no cache, or not one this version wrote: decide from the record

    def store(
        self, rows: list[AssetOutcome] | None, files: list[str] | None, mark: str | None, watched: Sequence[str] = ()
    ) -> None:
        """Remember ``rows`` if the stores are still at ``mark``; otherwise forget any earlier cache.

        ``files`` must still exist when the cache is used, ``watched`` must be unchanged (the
        source files of hand-written assets, wherever they live).
        """
        current = self.watermark()
        if rows is None or files is None or mark is None or current != mark:
            self.path.unlink(missing_ok=True)
            return
        body = {
            "inputs": self.inputs,
            "watermark": mark,
            "files": files,
            "watched": {path: file_stamp(Path(path)) for path in watched},
            "rows": [asdict(r) for r in rows],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.path)
