"""A full disk or a read-only SLIPWAY_HOME: one line saying so, no traceback, nothing broken (issue 7).

Each test puts SLIPWAY_HOME on a tmpfs of its own (mounting one needs root, which CI has).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from summary_rows import rows
from test_cli import REPO, slipway

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

FULL = "the disk is full. Free some space, then run again"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(mountpoint)], check=True)
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def _resize(mountpoint: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mountpoint)], check=True)


def _one_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and len(done.stderr.splitlines()) <= 6, done.stderr
    return errors[0]


def test_a_disk_that_fills_on_the_first_run_leaves_a_home_that_works_once_freed(tmpfs):
    home = tmpfs / "home"
    _resize(tmpfs, "size=1200k")  # room for the Dagster instance, not for MLflow's database
    error = _one_error(slipway("run", "houses", home=home))
    assert (
        error
        == f"error: cannot write to {home}: {FULL}: what earlier runs stored is kept, and a run cut short is settled by the next one"
    )

    _resize(tmpfs, "size=300m")
    again = slipway("run", "houses", home=home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "houses/price_model" in again.stdout and "champion" in again.stdout


def test_a_disk_that_fills_mid_training_is_reported_and_the_next_run_settles_it(tmpfs):
    """The disk fills right after the model version was registered (before its alias moved)."""
    home = tmpfs / "home"
    assert slipway("run", "houses", home=home).returncode == 0
    filler = tmpfs / "filler"
    env = {**os.environ, "SLIPWAY_HOME": str(home), "PYTHONPATH": str(REPO), "FILL_PATH": str(filler)}
    env.pop("SLIPWAY_STACK", None)
    killpoints = [sys.executable, str(REPO / "tests" / "killpoints.py"), "disk-full-after-registered"]
    done = subprocess.run(
        [*killpoints, "run", "houses", "--force"], env=env, capture_output=True, text=True, timeout=600
    )
    assert filler.exists(), "the run never reached the registration"
    _one_error(done)
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    (left,) = [v for v in client.search_model_versions("name = 'houses.price_model'") if v.version == 2]
    assert "slipway.abandoned" not in left.tags  # the disk was full: nothing could be settled then

    filler.unlink()
    again = slipway("run", "houses", home=home)
    assert again.returncode == 0, again.stdout + again.stderr
    runs = client.search_runs([client.get_experiment_by_name("houses").experiment_id])
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    assert "slipway.abandoned" in client.get_model_version("houses.price_model", "2").tags
    assert str(client.get_registered_model("houses.price_model").aliases["champion"]) in ("1", "3")


@pytest.mark.parametrize("force", [False, True], ids=["incremental", "force"])
def test_a_built_home_on_a_disk_that_is_full_says_the_disk_is_full(tmpfs, force):
    """Every byte of the file system taken after a first run: the next run says so, in one line."""
    home = tmpfs / "home"
    assert slipway("run", "houses", home=home).returncode == 0
    filler = tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    for size in (65536, 1):  # fill it to the last byte
        try:
            while True:
                os.write(fd, b"\0" * size)
        except OSError:
            pass
    os.close(fd)
    done = slipway("run", "houses", *(["--force"] if force else []), home=home)
    error = _one_error(done)
    assert FULL in error, error
    # The UI's daemon would print a traceback per heartbeat: `slipway dev` says it once, and does not start.
    dev = slipway("dev", home=home)
    assert FULL in _one_error(dev)
    filler.unlink()
    again = slipway("run", "houses", "--force", home=home)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_read_only_home_is_one_line(tmpfs):
    home = tmpfs / "home"
    assert slipway("run", "houses", home=home).returncode == 0
    _resize(tmpfs, "ro")
    error = _one_error(slipway("run", "houses", home=home))
    assert "it is read-only" in error, error
    assert _one_error(slipway("run", "houses", "--force", home=home)) == error


def test_a_home_on_a_read_only_file_system_from_the_start_is_one_line(tmpfs):
    _resize(tmpfs, "ro")
    error = _one_error(slipway("run", "houses", home=tmpfs / "home"))
    assert error.startswith(f"error: cannot write to {tmpfs / 'home'}") and "it is read-only" in error, error


def test_a_corrupt_mlflow_database_is_one_line_naming_it(home):
    assert slipway("run", "houses", home=home).returncode == 0
    (home / "mlflow.db").write_bytes(os.urandom(64 * 1024))
    done = slipway("run", "houses", "--force", home=home)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    lines = [line for line in [*rows(done.stdout), *done.stderr.splitlines()] if "file is not a database" in line]
    assert lines, done.stdout + done.stderr
    assert all(
        "[SQL:" not in line and "sqlalche.me" not in line
        for line in done.stdout.splitlines() + done.stderr.splitlines()
    )
    assert f"mlflow at sqlite:///{home}/mlflow.db" in lines[0]
