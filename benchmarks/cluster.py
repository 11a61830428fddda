"""Benchmark: the example pipelines on the real test cluster (one pod per step) beside the local stack.

Usage: ``uv run python benchmarks/cluster.py [--repeats 3]`` (root; builds and starts the cluster of
``tests/cluster`` as its tier does, and stops it at the end).

Each repeat, alternating:
  - cluster:      every example asset launched through Dagster's K8sRunLauncher (a launch pod, a run
                  pod, a step Job per step; PostgreSQL, the MLflow server and S3 of the cluster);
                  wall time from the launch pod's creation to the run pod's end;
  - multiprocess: ``slipway run --force`` of the same definitions on the local stack with the
                  multiprocess orchestrator (a process per step, SQLite, files), after a first run;
  - in_process:   the same with every step in the calling process (the local stack's default).
Per step pod: the time from the run pod asking for the Job (``STEP_WORKER_STARTING``) to the step
starting inside its pod (``STEP_START``: the pod scheduled, the container started, Python imports
and the instance connection done), read from Dagster's event log. Prints medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "tests" / "cluster"), str(REPO / "tests")]

import conftest  # noqa: E402  (tests/cluster: the tier's install)
import kube  # noqa: E402
import test_cluster  # noqa: E402  (the tier's launch)


def step_overheads(run_id: str) -> list[float]:
    """Seconds from STEP_WORKER_STARTING to STEP_START of each step of ``run_id``."""
    rows = kube.psql(
        "select step_key, dagster_event_type, extract(epoch from timestamp) from event_logs"
        f" where run_id = '{run_id}' and dagster_event_type in ('STEP_WORKER_STARTING', 'STEP_START')",
        "dagster",
    ).stdout.split()
    starts: dict[str, dict[str, float]] = {}
    for row in rows:
        step, kind, at = row.split("|")
        starts.setdefault(step, {})[kind] = float(at)
    return [s["STEP_START"] - s["STEP_WORKER_STARTING"] for s in starts.values() if len(s) == 2]


def local(orchestrator: str, home: Path) -> float:
    """Seconds of one `slipway run` (``--force`` after the first) on the local stack with ``orchestrator``."""
    home.mkdir(parents=True, exist_ok=True)
    stack = home / "stack.yaml"
    fields = yaml.safe_load((REPO / "stacks" / "local.yaml").read_text())
    fields["orchestrator"] = {"type": orchestrator}
    stack.write_text(yaml.safe_dump(fields))
    env = {**os.environ, "SLIPWAY_HOME": str(home), "NO_COLOR": "1"}
    env.pop("SLIPWAY_STACK", None)
    command = [str(Path(sys.executable).parent / "slipway"), "--stack", str(stack), "run"]
    if (home / "built").exists():
        command.append("--force")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    took = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"slipway run ({orchestrator}) failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    (home / "built").touch()
    return took


def main() -> None:
    """Start the cluster, install the chart, time the repeats, print medians, stop the cluster."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for script in ("deps.sh", "build.sh"):
        subprocess.run([str(REPO / "tests" / "cluster" / script)], check=True)
    kube.stop()
    kube.start()
    try:
        image = subprocess.run(
            [str(REPO / "tests" / "cluster" / "image.sh"), "--load"], check=True, capture_output=True, text=True
        ).stdout.strip()
        with tempfile.TemporaryDirectory() as tmp:
            release = conftest.install(image, f"slipway-bench-{os.getpid()}", Path(tmp))
            if isinstance(release, str):
                raise SystemExit(release)
            times: dict[str, list[float]] = {"cluster": [], "multiprocess": [], "in_process": []}
            overheads: list[float] = []
            for name in ("multiprocess", "in_process"):
                local(name, Path(tmp) / name)  # the first (cold) run: every later one is --force
            for _ in range(args.repeats):
                started = time.perf_counter()
                run_id = test_cluster.launch(release)
                test_cluster._wait_for_job(release, f"dagster-run-{run_id}", seconds=1800)
                times["cluster"].append(time.perf_counter() - started)
                overheads += step_overheads(run_id)
                for name in ("multiprocess", "in_process"):
                    times[name].append(local(name, Path(tmp) / name))
    finally:
        kube.stop()
    base = statistics.median(times["in_process"])
    print(f"example pipelines (12 assets), medians of {args.repeats}:")
    for name, values in times.items():
        print(f"  {name:13} {statistics.median(values):7.1f} s   {statistics.median(values) / base:5.2f}x in_process")
    print(
        f"per step pod (Job asked -> step started in its pod): median {statistics.median(overheads):.1f} s,"
        f" p90 {sorted(overheads)[int(0.9 * len(overheads))]:.1f} s over {len(overheads)} steps"
    )
    print(json.dumps({"times": times, "step_overheads": overheads}))


if __name__ == "__main__":
    main()
