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


# The cluster tier beside the rest. Most of its time is spent building Kubernetes and the image
# (once per machine) and waiting on pods, so when one session selects it with other tests (``uv run
# pytest``, what CI runs) it runs in a pytest of its own started at once, and this session waits
# for it at the end, prints its summary and fails if it failed. ``SLIPWAY_CLUSTER_BESIDE=0`` runs
# it in line instead; alone (``uv run pytest tests/cluster``) it always runs in line.
CLUSTER_TIER = REPO / "tests" / "cluster"


def _beside_wanted(config: pytest.Config) -> bool:
    import os

    return (
        os.environ.get("SLIPWAY_CLUSTER_BESIDE", "1") != "0"
        and os.geteuid() == 0  # without root the tier skips: nothing to gain
        and not config.option.collectonly
        and not hasattr(config, "workerinput")
    )


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have chosen the tests
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    cluster = [item for item in items if CLUSTER_TIER in item.path.parents]
    if not cluster or len(cluster) == len(items) or not _beside_wanted(config):
        return
    import os
    import signal
    import subprocess
    import sys
    import tempfile

    handle, name = tempfile.mkstemp(prefix="slipway-cluster-tier-", suffix=".log")
    log = Path(name)
    ids = [item.nodeid for item in cluster]
    maxfail = config.getoption("maxfail", 0)  # -x is --maxfail=1
    options = [f"--maxfail={maxfail}"] if maxfail else []
    with os.fdopen(handle, "w") as output:  # the child has its own copy
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(config.rootpath),
                *options,
                *ids,
            ],
            cwd=config.rootpath,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C here is passed on below, so the tier stops its cluster
        )
    config.stash[_BESIDE] = (child, log, len(ids))
    signal.signal(signal.SIGTERM, _interrupt)  # stopped, this session stops the tier too (see sessionfinish)
    items[:] = [item for item in items if item not in cluster]
    config.hook.pytest_deselected(items=cluster)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"the cluster tier ({len(ids)} tests) runs beside these in pid {child.pid}; its log: {log}")


_BESIDE = pytest.StashKey[tuple[object, Path, int]]()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import os
    import signal
    import subprocess

    held = session.config.stash.get(_BESIDE, None)
    if held is None:
        return
    child, log, count = held
    assert isinstance(child, subprocess.Popen)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        child.send_signal(signal.SIGINT)
    if reporter is not None and child.poll() is None:
        reporter.write_line(f"\nwaiting for the cluster tier (pid {child.pid}, log {log}) …")
    try:
        code = child.wait()
    except BaseException:  # a second Ctrl-C, or this process stopped: the tier stops its cluster, then goes
        os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
        raise
    lines = log.read_text(errors="replace").splitlines()
    summary = lines if code else lines[-25:]
    if reporter is not None:
        reporter.write_sep("=", f"the cluster tier ({count} tests), run beside: exit {code}")
        for line in summary[-400:]:
            reporter.write_line(line)
    if code not in (0, pytest.ExitCode.NO_TESTS_COLLECTED) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
