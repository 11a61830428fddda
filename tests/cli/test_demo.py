"""`slipway demo drift churn` as the README walks through it: the sensors notice, the model retrains."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from views import automation_requests, launch, retrain_tick, ui_materialize

from assets.spec.tags import TRIGGER_TAG
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def slipway(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    env.pop("SLIPWAY_STACK", None)
    return subprocess.run([str(BIN / "slipway"), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def test_the_drift_demo_retrains_the_churn_model_through_the_sensors(home, defs_dir):
    shutil.copytree(REPO / "definitions" / "defs" / "churn", defs_dir / "churn")
    assert run(["churn"], defs_dir=defs_dir).ok

    shown = slipway("--defs", str(defs_dir), "demo", "drift", "churn", home=home)
    assert shown.returncode == 0, shown.stderr
    batch = defs_dir / "churn" / "data" / "batch_001.csv"
    assert f"{batch}: 3000 rows drifted by 1.0 (dataset churn/customers)" in shown.stdout
    assert (
        "churn/churn_classifier: retrains on psi drift above 0.2, on schedule '0 3 * * 1', cooldown 2m" in shown.stdout
    )
    landed = pd.read_csv(batch)
    first = pd.read_csv(defs_dir / "churn" / "data" / "batch_000.csv")
    assert list(landed.columns) == list(first.columns) and landed.customer_id.min() == first.customer_id.max() + 1

    # Observed by the demo: the automation sensor rebuilds the chain below the files, a step a tick.
    steps = [{"churn/customers"}, {"churn/features"}, {"churn/training", "churn/holdout"}]
    for expected in steps:
        assert automation_requests(defs_dir) == expected
        assert ui_materialize(defs_dir, *sorted(expected)).success
    assert automation_requests(defs_dir) == set()

    # The retrain sensor scores the drift and asks for the model (the cooldown of 2m has passed by then).
    import time

    (request,) = retrain_tick(defs_dir, time.time() + 180).run_requests
    assert request.tags[TRIGGER_TAG] == "drift"
    assert launch(defs_dir, request).success

    again = slipway("--defs", str(defs_dir), "demo", "drift", "churn", "--rows", "10", home=home)
    assert again.returncode == 0 and (defs_dir / "churn" / "data" / "batch_002.csv").exists(), again.stderr


def test_the_demo_refuses_what_it_cannot_do_in_one_line(home, defs_dir):
    shutil.copytree(REPO / "definitions" / "defs" / "churn", defs_dir / "churn")
    shutil.copytree(REPO / "definitions" / "defs" / "houses", defs_dir / "houses")
    before = (defs_dir / "houses" / "data" / "houses.csv").read_bytes()
    for args, message in (
        (("drift", "chrun"), "error: no pipeline 'chrun' in"),
        (("drift", "churn", "--shift", "9"), "error: --shift 9.0: give a shift between 0 and 3"),
        (("drift", "churn", "--rows", "0"), "error: --rows 0: give at least one row"),
        (("drift", "houses"), "error: pipeline houses: no dataset lands CSV batches in a folder"),
    ):
        result = slipway("--defs", str(defs_dir), "demo", *args, home=home)
        assert result.returncode == 1 and result.stderr.startswith(message), result.stderr
        assert "Traceback" not in result.stderr
    assert not (defs_dir / "churn" / "data" / "batch_001.csv").exists()
    assert (defs_dir / "houses" / "data" / "houses.csv").read_bytes() == before  # never edits a file


def test_every_documented_shift_lands_a_sensible_batch(home, defs_dir):
    shutil.copytree(REPO / "definitions" / "defs" / "churn", defs_dir / "churn")
    for number, shift in enumerate(("0.1", "1", "2", "3"), start=1):
        result = slipway(
            "--defs", str(defs_dir), "demo", "drift", "churn", "--rows", "300", "--shift", shift, home=home
        )
        assert result.returncode == 0, result.stderr
        batch = pd.read_csv(defs_dir / "churn" / "data" / f"batch_{number:03d}.csv")
        assert len(batch) == 300 and batch.tenure.nunique() > 5 and batch.notna().all().all(), shift
