"""Where a run came from: the git commit, whether it holds what ran, the Slipway and lock versions."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from resources.paths import PROJECT_ROOT


@functools.cache
def _git(folder: Path) -> tuple[str, Path, tuple[str, ...]] | None:
    """``(sha, repository root, porcelain status lines with untracked files)``, or None outside git."""
    try:
        root = _run(["git", "rev-parse", "--show-toplevel"], folder).strip()
        sha = _run(["git", "rev-parse", "HEAD"], folder).strip()
        status = _run(["git", "status", "--porcelain", "--untracked-files=all", "-z"], folder)
    except (OSError, subprocess.SubprocessError):
        return None
    return sha, Path(root).resolve(), tuple(entry for entry in status.split("\0") if entry)


def _run(command: list[str], folder: Path) -> str:
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True, timeout=10).stdout


def git_state(folder: Path, code_files: Iterable[Path] = ()) -> tuple[str, bool]:
    """``(sha, dirty)`` for a pipeline in ``folder`` that runs ``code_files``.

    Dirty means the commit does not hold what ran: a tracked file anywhere in the repository
    is modified, or an untracked file sits in the pipeline's folder or is one of its code files
    (an untracked ``defs.yaml`` or training module is not in the commit either). Outside git:
    ``("unknown", False)``.
    """
    found = _git(folder.resolve())
    if found is None:
        return "unknown", False
    sha, root, entries = found
    watched = [folder.resolve(), *(Path(f).resolve() for f in code_files)]
    for entry in entries:
        code, path = entry[:2], entry[3:]
        if code != "??":
            return sha, True
        untracked = root / path
        if any(untracked == w or w in untracked.parents for w in watched):
            return sha, True
    return sha, False


def slipway_version() -> str:
    """The installed Slipway distribution's version."""
    try:
        return version("slipway")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def lock_hash(root: Path = PROJECT_ROOT) -> str:
    """blake2b of the project's ``uv.lock`` (the exact library versions), or ``none``."""
    try:
        return hashlib.blake2b((root / "uv.lock").read_bytes(), digest_size=12).hexdigest()
    except FileNotFoundError:
        return "none"
