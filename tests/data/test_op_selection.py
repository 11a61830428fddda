"""An asset job run as an op selection: Dagster passes a dataset's unselected inputs as empty lists.

`dagster job launch -o churn__features` (or `job execute -o`) of the asset job builds an op subset
in which the inputs of `churn/features` have no source left, and Dagster hands each an empty list
instead of loading it (no LOADED_INPUT event): seen on the cluster and here. The step must say that,
and what to run instead, rather than "input customers is an object of type list".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_an_op_selection_of_a_dataset_with_inputs_says_to_select_assets(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLIPWAY_", "DAGSTER_"))}
    env["SLIPWAY_HOME"] = str(tmp_path / "home")
    built = subprocess.run(
        [str(BIN / "slipway"), "run", "churn"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (home,) = (tmp_path / "home").glob("dagster*")
    done = subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "definitions.definitions", "-a", "defs"]
        + ["-j", "__ASSET_JOB", "-o", "churn__features"],
        cwd=REPO,
        env={**env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("resources.errors.DataError")]
    assert said, done.stdout[-3000:] + done.stderr[-3000:]
    assert said[0].startswith(f"resources.errors.DataError: {REPO}/definitions/defs/churn/defs.yaml:"), said[0]
    assert said[0].endswith(
        "pipeline churn, dataset features: inputs customers, events were not loaded: Dagster passes an empty "
        "list for each when the asset job runs as an op selection (dagster job launch -o); select assets "
        "instead (the UI, dagster asset materialize --select, slipway run)"
    ), said[0]
