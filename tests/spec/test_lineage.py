"""Provenance: the recorded commit is dirty whenever it does not hold what ran."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from assets.spec import lineage


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "defs" / "churn").mkdir(parents=True)
    (root / "defs" / "churn" / "defs.yaml").write_text("type: assets.Pipeline\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "tracked.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "init")
    return root


def _state(folder: Path, code: list[Path] | None = None) -> tuple[str, bool]:
    lineage._git.cache_clear()
    return lineage.git_state(folder, code or [])


def test_clean_checkout_is_clean_and_names_its_commit(repo):
    sha, dirty = _state(repo / "defs" / "churn")
    assert len(sha) == 40 and dirty is False


def test_untracked_file_in_the_pipeline_folder_is_dirty(repo):
    (repo / "defs" / "churn" / "data").mkdir()
    (repo / "defs" / "churn" / "data" / "batch_001.csv").write_text("a\n1\n")
    assert _state(repo / "defs" / "churn")[1] is True


def test_untracked_pipeline_definition_is_dirty(repo):
    (repo / "defs" / "houses").mkdir()
    (repo / "defs" / "houses" / "defs.yaml").write_text("type: assets.Pipeline\n")
    assert _state(repo / "defs" / "houses")[1] is True
    # ...but not for another pipeline, whose files are all in the commit.
    assert _state(repo / "defs" / "churn")[1] is False


def test_untracked_code_module_the_pipeline_names_is_dirty(repo):
    module = repo / "pkg" / "training.py"
    module.write_text("def fit(x, y, params): ...\n")
    assert _state(repo / "defs" / "churn", [module])[1] is True
    assert _state(repo / "defs" / "churn", [repo / "pkg" / "tracked.py"])[1] is False


def test_modified_tracked_file_anywhere_is_dirty(repo):
    (repo / "pkg" / "tracked.py").write_text("x = 2\n")
    assert _state(repo / "defs" / "churn")[1] is True


def test_outside_git_is_unknown(tmp_path):
    assert _state(tmp_path) == ("unknown", False)


def test_lock_hash_follows_the_lock_file(tmp_path):
    (tmp_path / "uv.lock").write_text("a")
    first = lineage.lock_hash.__wrapped__(tmp_path)
    (tmp_path / "uv.lock").write_text("b")
    assert lineage.lock_hash.__wrapped__(tmp_path) != first
    assert lineage.lock_hash.__wrapped__(tmp_path / "missing") == "none"
