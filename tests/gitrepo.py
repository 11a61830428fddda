"""Git repositories for tests of `slipway plan`, `repro` and alias pins."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` (with a test identity); its output, stripped."""
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def commit_all(cwd: Path, message: str) -> str:
    """Commit everything in the work tree; the new commit's sha."""
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", message)
    return git(cwd, "rev-parse", "HEAD")


def init(cwd: Path) -> str:
    """A new repository in ``cwd`` with everything there committed; the commit's sha."""
    git(cwd, "init", "-q", "-b", "main")
    return commit_all(cwd, "first")
