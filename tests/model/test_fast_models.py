"""Models that train in milliseconds: MLflow's start-up must not race with the training thread."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

IRIS = """
type: assets.Pipeline
attributes:
  name: iris
  datasets:
    flowers:
      source: {sklearn: iris}
  models:
    tree:
      dataset: flowers
      target: target
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3, random_state: 0}
      metrics: [accuracy]
"""


@pytest.mark.slow
def test_millisecond_model_succeeds_20_runs_in_a_row_fresh_and_repeated(tmp_path, write_pipeline, defs_dir):
    write_pipeline("iris", IRIS)
    slipway = str(Path(sys.executable).parent / "slipway")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}

    def home(attempt: int) -> list[tuple[int, str]]:
        # Each home is new (MLflow's database created by the warm-up) and then reused with --force
        # (MLflow imported and connected while a millisecond training runs).
        own = {**env, "SLIPWAY_HOME": str(tmp_path / f"home{attempt}")}
        outcomes = []
        for extra in ([], ["--force"]):
            done = subprocess.run(
                [slipway, "--defs", str(defs_dir), "run", *extra],
                cwd=REPO,
                env=own,
                capture_output=True,
                text=True,
                timeout=600,
            )
            outcomes.append((done.returncode, done.stdout[-600:] + done.stderr[-600:]))
        return outcomes

    # Two homes at a time: each run is a process of its own (the race is inside one), so the pairs
    # only halve the wait for Python's start-up, and a busier machine makes the race likelier.
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = [outcome for pair in pool.map(home, range(10)) for outcome in pair]
    failures = [text for code, text in outcomes if code != 0]
    assert len(outcomes) == 20
    assert failures == [], f"{len(failures)} of 20 runs failed; first:\n{failures[0] if failures else ''}"


@pytest.mark.slow
def test_a_run_of_a_model_alone_prints_no_dagster_warning(tmp_path, write_pipeline, defs_dir):
    write_pipeline("iris", IRIS)
    slipway = [str(Path(sys.executable).parent / "slipway"), "--defs", str(defs_dir), "run"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}, "SLIPWAY_HOME": str(tmp_path / "h")}
    assert subprocess.run(slipway, cwd=REPO, env=env, capture_output=True, timeout=300).returncode == 0
    write_pipeline("iris", IRIS.replace("max_depth: 3", "max_depth: 2"))  # the dataset is reused
    done = subprocess.run(slipway, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^iris/flowers\s+= reused", done.stdout, re.MULTILINE), done.stdout
    assert "Warning" not in done.stderr, done.stderr
