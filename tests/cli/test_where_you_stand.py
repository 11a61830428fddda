"""The definitions folder is the project's you stand in, not the installed checkout's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_cli import SLIPWAY

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """\
type: assets.Pipeline
attributes:
  name: elsewhere
  datasets:
    rows: {source: {generator: churn, rows: 30}}
"""


def _slipway(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLIPWAY_STACK", "SLIPWAY_DEFS")}
    env["SLIPWAY_HOME"] = str(home)
    return subprocess.run([SLIPWAY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_commands_read_the_definitions_of_the_project_they_run_in(tmp_path, home):
    project = tmp_path / "other-clone"
    (project / "definitions" / "defs" / "elsewhere").mkdir(parents=True)
    (project / "definitions" / "defs" / "elsewhere" / "defs.yaml").write_text(SHOP)
    for cwd in (project, project / "definitions" / "defs" / "elsewhere"):
        done = _slipway(cwd, home, "validate")
        assert done.returncode == 0, done.stderr
        assert "pipeline elsewhere: ok" in done.stdout and "pipeline churn" not in done.stdout, done.stdout
    ran = _slipway(project, home, "run")
    assert ran.returncode == 0, ran.stderr
    assert "elsewhere/rows" in ran.stdout and "churn/" not in ran.stdout


def test_a_folder_that_is_no_project_is_refused_in_one_line(tmp_path, home):
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    for command in (["validate"], ["run"], ["plan"]):
        done = _slipway(nowhere, home, *command)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"error: {nowhere}: not in a Slipway project (no definitions/defs folder here or above); "
            "run slipway inside the project, or give --defs FOLDER"
        ]


def test_plan_compares_the_stacks_of_the_project_it_runs_in(tmp_path, home):
    from gitrepo import init

    project = tmp_path / "other-clone"
    (project / "definitions" / "defs" / "elsewhere").mkdir(parents=True)
    (project / "definitions" / "defs" / "elsewhere" / "defs.yaml").write_text(SHOP)
    (project / "stacks").mkdir()
    (project / "stacks" / "local.yaml").write_text("alerter: {type: log}\n")
    (project / "uv.lock").write_text("version = 1\n")
    init(project)
    (project / "stacks" / "local.yaml").write_text(
        "alerter: {type: log}\ndrift_detector: {type: statistical, bins: 7}\n"
    )
    done = _slipway(project, home, "plan")
    assert done.returncode == 0, done.stderr
    assert "local: drift_detector: (none)" in done.stdout and "outside the repository" not in done.stdout, done.stdout
