"""Benchmark: the example pipelines on the real test cluster (one pod per step) beside the local stack.

Usage: ``uv run python benchmarks/cluster.py [--repeats 3] [--workload examples|reference]`` (root;
builds and starts the cluster of ``tests/cluster`` as its tier does, and stops it at the end).

``--workload examples`` (the default), each repeat, alternating:
  - cluster:      every example asset launched through Dagster's K8sRunLauncher (a launch pod, a run
                  pod, a step Job per step; PostgreSQL, the MLflow server and S3 of the cluster);
                  wall time from the launch pod's creation to the run pod's end;
  - multiprocess: ``slipway run --force`` of the same definitions on the local stack with the
                  multiprocess orchestrator (a process per step, SQLite, files), after a first run;
  - in_process:   the same with every step in the calling process (the local stack's default).
Per step pod: the time from the run pod asking for the Job (``STEP_WORKER_STARTING``) to the step
starting inside its pod (``STEP_START``: the pod scheduled, the container started, Python imports
and the instance connection done), read from Dagster's event log, split by the pod's own record
(creation, ``PodScheduled``, the container's ``startedAt``; the API gives whole seconds):
  - job -> pod:      the Job controller creating the pod;
  - pod -> node:     the scheduler binding it;
  - node -> started: sandbox, network (CNI) and container start (the image is on the node: no pull);
  - started -> step: the step process: Python, imports, loading the code location, the instance.
The last is split once more by a pod of the same image and settings that times each part itself
(``inside_pod``).

``--workload reference``: the reference workload of ``benchmarks/reference.py`` (20,000 rows x 20
features, a random forest, drift), *cold* each repeat: on the cluster a pipeline of its own
(``reference_<i>``, the same YAML and data) in an image built on the project image with those
pipelines as its definitions (``tests/cluster/image.sh --defs``, as a team ships its own); locally a
new SLIPWAY_HOME with the multiprocess and the in-process orchestrator; and the plain-Python
baseline (``benchmarks/plain_reference.py``) in the same repeat. Prints medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "tests" / "cluster"), str(REPO / "tests"), str(HERE), str(REPO)]

import conftest  # noqa: E402  (tests/cluster: the tier's install)
import kube  # noqa: E402
import reference  # noqa: E402  (benchmarks/reference.py: the workload's YAML and data)
import test_cluster  # noqa: E402  (the tier's launch)


def step_events(run_id: str) -> dict[str, dict[str, float]]:
    """Per step of ``run_id``: when Dagster recorded STEP_WORKER_STARTING and STEP_START (epoch seconds)."""
    rows = kube.psql(
        "select step_key, dagster_event_type, extract(epoch from timestamp) from event_logs"
        f" where run_id = '{run_id}' and dagster_event_type in ('STEP_WORKER_STARTING', 'STEP_START')",
        "dagster",
    ).stdout.split()
    events: dict[str, dict[str, float]] = {}
    for row in rows:
        step, kind, at = row.split("|")
        events.setdefault(step, {})[kind] = float(at)
    return events


def step_overheads(events: dict[str, dict[str, float]]) -> list[float]:
    """Seconds from STEP_WORKER_STARTING to STEP_START of each step (:func:`step_events`)."""
    return [s["STEP_START"] - s["STEP_WORKER_STARTING"] for s in events.values() if len(s) == 2]


def _at(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def pod_phases(release: conftest.Release, run_id: str, events: dict[str, dict[str, float]]) -> list[dict[str, float]]:
    """Per step of ``run_id``: seconds in each phase from the Job asked for to the step started."""
    pods = release.json("pods", "-l", f"dagster/run-id={run_id},app.kubernetes.io/component=step_worker")["items"]
    phases = []
    for pod in pods:
        step = events.get(pod["metadata"]["labels"]["dagster/op"], {})
        scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
        state = pod["status"]["containerStatuses"][0]["state"]
        started = (state.get("terminated") or state.get("running") or {}).get("startedAt")
        if len(step) < 2 or not started:
            continue
        created, bound, running = (
            _at(pod["metadata"]["creationTimestamp"]),
            _at(scheduled["lastTransitionTime"]),
            _at(started),
        )
        phases.append({
            "job -> pod": created - step["STEP_WORKER_STARTING"],
            "pod -> node": bound - created,
            "node -> started": running - bound,
            "started -> step": step["STEP_START"] - running,
        })  # fmt: skip
    return phases


INSIDE = """
import json, time
t0 = time.perf_counter()
import dagster
t1 = time.perf_counter()
import definitions.definitions as location
location.build_definitions().get_repository_def()
t2 = time.perf_counter()
instance = dagster.DagsterInstance.get()
instance.get_runs(limit=1)
t3 = time.perf_counter()
print(json.dumps({"import dagster": t1 - t0, "load the code location": t2 - t1, "instance + first query": t3 - t2}))
"""


def inside_pod(release: conftest.Release, image: str, name: str) -> dict[str, float]:
    """A pod as a step pod is (the code server's env, volumes and instance), timing each part itself."""
    deployment = release.json(f"deployment/{conftest.RELEASE}-code-server")["spec"]["template"]["spec"]
    (server,) = deployment["containers"]
    home = "/opt/dagster/dagster_home"
    # The run's instance (step pods get it from the run: the launcher's dagster.yaml).
    env = [e for e in server.get("env", []) if e["name"] not in ("DAGSTER_HOME", "DAGSTER_PG_PASSWORD")]
    password = {"secretKeyRef": {"name": "slipway-postgres", "key": "postgresql-password"}}
    env += [{"name": "DAGSTER_HOME", "value": home}, {"name": "DAGSTER_PG_PASSWORD", "valueFrom": password}]
    mounts = [*server.get("volumeMounts", []), {"name": "instance", "mountPath": home}]
    volumes = [*deployment.get("volumes", []), {"name": "instance", "configMap": {"name": "dagster-instance"}}]
    done = test_cluster._job(
        release, name, INSIDE, image, env=env, envFrom=server.get("envFrom", []), volumeMounts=mounts, volumes=volumes
    )
    logs = release.kubectl("logs", f"job/{name}").stdout.strip().splitlines()
    if done["status"].get("succeeded") != 1:
        raise SystemExit(f"the timing pod failed: {logs[-20:]}")
    return json.loads(logs[-1])


def local(orchestrator: str, home: Path, defs: Path | None = None) -> float:
    """Seconds of one `slipway run` on the local stack with ``orchestrator``.

    Of the examples, or of the pipelines in ``defs``; ``--force`` after the first run in ``home``.
    """
    home.mkdir(parents=True, exist_ok=True)
    stack = home / "stack.yaml"
    fields = yaml.safe_load((REPO / "stacks" / "local.yaml").read_text())
    fields["orchestrator"] = {"type": orchestrator}
    stack.write_text(yaml.safe_dump(fields))
    env = {**os.environ, "SLIPWAY_HOME": str(home), "NO_COLOR": "1"}
    env.pop("SLIPWAY_STACK", None)
    command = [str(Path(sys.executable).parent / "slipway"), "--stack", str(stack)]
    command += ["--defs", str(defs), "run"] if defs else ["run"]
    if (home / "built").exists():
        command.append("--force")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    took = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"slipway run ({orchestrator}) failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    (home / "built").touch()
    return took


def reference_pipelines(root: Path, repeats: int) -> tuple[Path, Path, Path]:
    """The reference data and pipelines under ``root``.

    Returns its CSV, a defs folder of ``reference_0`` .. ``reference_<repeats-1>`` (the cluster's,
    one per cold repeat) and one of ``reference`` (the local runs', a new home each repeat).
    """
    csv, one = reference.write_reference(root / "one")
    many = root / "many"
    for i in range(repeats):
        folder = many / f"reference_{i}"
        folder.mkdir(parents=True)
        shutil.copy(csv, folder / csv.name)
        text = (one / "defs.yaml").read_text().replace("name: reference", f"name: reference_{i}", 1)
        (folder / "defs.yaml").write_text(text)
    return csv, many, one.parent


def reference_ops(pipeline: str) -> str:
    """The ops of one reference pipeline in Dagster's asset job: its file, its table, its model."""
    return f"{pipeline}__table__reference_csv,{pipeline}__table,{pipeline}__forest"


def start(image_args: tuple[str, ...] = ()) -> str:
    """Build (if needed) and start the tier's cluster; the image it loaded."""
    for script in ("deps.sh", "build.sh"):
        subprocess.run([str(REPO / "tests" / "cluster" / script)], check=True)
    kube.stop()
    kube.start()
    built = subprocess.run(
        [str(REPO / "tests" / "cluster" / "image.sh"), "--load", *image_args], capture_output=True, text=True
    )
    if built.returncode:
        kube.stop()  # started above: nothing is left running when the image cannot be built
        raise SystemExit(f"tests/cluster/image.sh failed:\n{built.stderr[-3000:]}")
    return built.stdout.strip()


def print_pods(overheads: list[float], phases: list[dict[str, float]], inside: list[dict[str, float]]) -> None:
    """The per step pod overhead and where it goes (medians)."""
    print(
        f"per step pod (Job asked -> step started in its pod): median {statistics.median(overheads):.1f} s,"
        f" p90 {sorted(overheads)[int(0.9 * len(overheads))]:.1f} s over {len(overheads)} steps"
    )
    print("where it goes (medians per step pod; the pod's record has whole seconds):")
    for phase in phases[0] if phases else []:
        print(f"  {phase:18} {statistics.median(p[phase] for p in phases):5.1f} s")
    print("inside the step pod's Python (a pod of the same image and settings, timing itself):")
    for part in inside[0] if inside else []:
        print(f"  {part:24} {statistics.median(i[part] for i in inside):5.2f} s")


def examples(repeats: int) -> None:
    """The example pipelines: the cluster, multiprocess and in_process, ``--force`` after a first run."""
    image = start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            release = conftest.install(image, f"slipway-bench-{os.getpid()}", Path(tmp))
            if isinstance(release, str):
                raise SystemExit(release)
            times: dict[str, list[float]] = {"cluster": [], "multiprocess": [], "in_process": []}
            overheads: list[float] = []
            phases: list[dict[str, float]] = []
            inside: list[dict[str, float]] = []
            for name in ("multiprocess", "in_process"):
                local(name, Path(tmp) / name)  # the first (cold) run: every later one is --force
            for _ in range(repeats):
                started = time.perf_counter()
                run_id = test_cluster.launch(release)
                test_cluster._wait_for_job(release, f"dagster-run-{run_id}", seconds=1800)
                times["cluster"].append(time.perf_counter() - started)
                events = step_events(run_id)
                overheads += step_overheads(events)
                phases += pod_phases(release, run_id, events)
                inside.append(inside_pod(release, image, f"inside-{run_id[:8]}"))
                for name in ("multiprocess", "in_process"):
                    times[name].append(local(name, Path(tmp) / name))
    finally:
        kube.stop()
    base = statistics.median(times["in_process"])
    print(f"example pipelines (12 assets), medians of {repeats}:")
    for name, values in times.items():
        print(f"  {name:13} {statistics.median(values):7.1f} s   {statistics.median(values) / base:5.2f}x in_process")
    print_pods(overheads, phases, inside)
    print(json.dumps({"times": times, "step_overheads": overheads, "phases": phases, "inside": inside}))


def reference_cold(repeats: int) -> None:
    """The reference workload, cold each repeat: the cluster, multiprocess, in_process and plain Python."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv, many, one = reference_pipelines(root, repeats)
        image = start(("--defs", str(many)))
        times: dict[str, list[float]] = {"cluster": [], "multiprocess": [], "in_process": [], "plain": []}
        overheads: list[float] = []
        phases: list[dict[str, float]] = []
        try:
            release = conftest.install(image, f"slipway-bench-{os.getpid()}", root)
            if isinstance(release, str):
                raise SystemExit(release)
            env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
            for i in range(repeats):
                started = time.perf_counter()
                run_id = test_cluster.launch(release, ops=reference_ops(f"reference_{i}"))
                run_job = test_cluster._wait_for_job(release, f"dagster-run-{run_id}", seconds=1800)
                times["cluster"].append(time.perf_counter() - started)
                if run_job["status"].get("succeeded") != 1 or test_cluster._run_status(run_id) != "SUCCESS":
                    raise SystemExit(f"the reference run {run_id} on the cluster failed")
                events = step_events(run_id)
                overheads += step_overheads(events)
                phases += pod_phases(release, run_id, events)
                for name in ("multiprocess", "in_process"):
                    times[name].append(local(name, root / f"{name}-{i}", one))  # a new home: cold
                times["plain"].append(
                    reference.timed([sys.executable, str(HERE / "plain_reference.py"), str(csv)], env)
                )
                print("repeat", i + 1, {k: round(v[-1], 1) for k, v in times.items()}, flush=True)
        finally:
            kube.stop()
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"reference workload (20,000 x 20, random forest, drift), cold, medians of {repeats}:")
    for name, value in medians.items():
        print(
            f"  {name:13} {value:7.1f} s   {value / medians['in_process']:5.2f}x in_process"
            f"   {value / medians['multiprocess']:5.2f}x multiprocess   {value / medians['plain']:5.2f}x plain"
        )
    print_pods(overheads, phases, [])
    print(json.dumps({"times": times, "step_overheads": overheads, "phases": phases}))


def main() -> None:
    """Time the chosen workload, print medians; the cluster is stopped at the end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workload", choices=["examples", "reference"], default="examples")
    args = parser.parse_args()
    try:
        with kube.session():  # the cluster tier (or another benchmark) is not stopped under its feet
            (reference_cold if args.workload == "reference" else examples)(args.repeats)
    except kube.ClusterBusy as busy:
        raise SystemExit(str(busy)) from None


if __name__ == "__main__":
    main()
