"""Shared fixtures: a temporary SLIPWAY_HOME and pipeline folders written from YAML text."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty SLIPWAY_HOME; the local stack puts Dagster, MLflow and artifacts there."""
    path = tmp_path / "home"
    monkeypatch.setenv("SLIPWAY_HOME", str(path))
    monkeypatch.delenv("SLIPWAY_STACK", raising=False)
    for var in [v for v in __import__("os").environ if v.startswith("SLIPWAY_") and "__" in v]:
        monkeypatch.delenv(var)
    return path


@pytest.fixture
def defs_dir(tmp_path: Path) -> Path:
    """An empty folder of pipeline definitions."""
    path = tmp_path / "defs"
    path.mkdir()
    return path


WritePipeline = Callable[..., Path]


@pytest.fixture
def write_pipeline(defs_dir: Path) -> WritePipeline:
    """Write ``<defs_dir>/<folder>/defs.yaml`` (dedented) and optional data files."""

    def write(folder: str, text: str, files: dict[str, object] | None = None) -> Path:
        target = defs_dir / folder
        target.mkdir(parents=True, exist_ok=True)
        (target / "defs.yaml").write_text(textwrap.dedent(text).lstrip())
        for name, frame in (files or {}).items():
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path, index=False)  # type: ignore[attr-defined]
        return target / "defs.yaml"

    return write
