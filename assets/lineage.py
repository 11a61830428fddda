"""Where a run came from: the git commit of the definitions and whether the tree was dirty."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


@functools.cache
def git_state(folder: Path) -> tuple[str, bool]:
    """``(sha, dirty)`` of the repository holding ``folder``; ``("unknown", False)`` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return sha, bool(status.strip())
