"""Benchmark: the reference workload on the local stack vs the Postgres + MLflow server + S3 tier.

Usage: ``uv run python benchmarks/storage_tier.py [--repeats 5]``

The tier is the Kubernetes stack's storage path, run here (as ``tests/stacks/test_storage_tier.py``
runs it): Dagster's instance on the local PostgreSQL, a real ``mlflow server --workers 1``
(backend store on PostgreSQL, artifacts on S3), asset outputs on an S3 server (moto's server
mode), all on 127.0.0.1. Each repeat gets new databases, a new MLflow server and a new bucket
prefix (started before the timing), then, alternating, in fresh processes:

  - plain:       ``benchmarks/plain_reference.py`` (no tracking, no stores);
  - local:       ``slipway run`` on the local stack, new SLIPWAY_HOME; then ``--force``; then a no-op;
  - tier:        the same three on the tier, steps in process (the storage path alone);
  - tier + procs: a cold run on the tier with the multiprocess executor (each step a process
                 that loads the code location, as a step pod does).

Prints medians, the ratios, and each asset's step time (from the run summary) so the
difference can be placed: stores reached over the network, the server's model upload,
Postgres instead of SQLite, no no-op cache on a server-backed stack.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from mlflow_server import MlflowServer  # noqa: E402
from reference import write_reference  # noqa: E402
from services import S3_ENV, MotoServer, scratch_databases  # noqa: E402

BUCKET = "bench"
STEP = re.compile(r"^reference/(\w+)\s+\S+ (?:built|reused)\s+([0-9.]+)s", re.M)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Wall time of one command and the step times its summary reports; exit with its output if it fails."""
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, {name: float(seconds) for name, seconds in STEP.findall(result.stdout)}


def tier_stack(path: Path, databases: dict[str, str], mlflow: str, moto: str, prefix: str, executor: str) -> Path:
    """A stack file on the tier's services."""
    path.write_text(
        f"orchestrator: {{type: {executor}}}\n"
        f"instance: {{storage: postgres, hostname: 127.0.0.1, db_name: {databases['dagster']}, username: postgres,"
        ' password_env: null, base_dir: "${SLIPWAY_HOME}/dagster"}\n'
        f"experiment_tracker: {{type: mlflow_server, tracking_uri: '{mlflow}'}}\n"
        f"artifact_store: {{type: s3, bucket: {BUCKET}, prefix: {prefix}, endpoint_url: '{moto}'}}\n"
    )
    return path


def main() -> None:
    """Run every measurement and print the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    results: dict[str, list[float]] = {}
    steps: dict[str, dict[str, list[float]]] = {}

    def keep(name: str, measured: tuple[float, dict[str, float]]) -> float:
        results.setdefault(name, []).append(measured[0])
        for step, seconds in measured[1].items():
            steps.setdefault(name, {}).setdefault(step, []).append(seconds)
        return measured[0]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv, defs = write_reference(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
        moto = MotoServer(root / "moto")
        moto.start()
        try:
            moto.client().create_bucket(Bucket=BUCKET)
            for i in range(args.repeats):
                with scratch_databases("dagster", "mlflow", "dagster2", "mlflow2") as dbs:
                    servers = [
                        MlflowServer(
                            root / f"mlflow{i}-{n}",
                            backend=f"postgresql+psycopg2://postgres@127.0.0.1:5432/{dbs['mlflow' + n]}",
                            artifacts=f"s3://{BUCKET}/mlflow{i}-{n}",
                            env={**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": moto.url},
                        )
                        for n in ("", "2")
                    ]
                    for server in servers:
                        server.start()
                    try:
                        slipway = [str(BIN / "slipway"), "--defs", str(defs.parent)]
                        tier_env = {**env, **S3_ENV}
                        in_process = tier_stack(
                            root / f"tier{i}.yaml",
                            {"dagster": dbs["dagster"]},
                            servers[0].url,
                            moto.url,
                            f"a{i}",
                            "in_process",
                        )
                        procs = tier_stack(
                            root / f"procs{i}.yaml",
                            {"dagster": dbs["dagster2"]},
                            servers[1].url,
                            moto.url,
                            f"b{i}",
                            "multiprocess",
                        )
                        plain = keep("plain", timed([sys.executable, str(HERE / "plain_reference.py"), str(csv)], env))
                        local_env = {**env, "SLIPWAY_HOME": str(root / f"local{i}")}
                        line = [f"plain {plain:.2f}"]
                        for label, stack, run_env in (
                            ("local", None, local_env),
                            ("tier", in_process, {**tier_env, "SLIPWAY_HOME": str(root / f"tierhome{i}")}),
                        ):
                            base = [*slipway, *(["--stack", str(stack)] if stack else []), "run"]
                            cold = keep(f"{label} cold", timed(base, run_env))
                            force = keep(f"{label} --force", timed([*base, "--force"], run_env))
                            noop = keep(f"{label} no-op", timed(base, run_env))
                            line.append(f"{label} {cold:.2f}/{force:.2f}/{noop:.2f}")
                        procs_env = {**tier_env, "SLIPWAY_HOME": str(root / f"procshome{i}")}
                        cold = keep("tier + procs cold", timed([*slipway, "--stack", str(procs), "run"], procs_env))
                        line.append(f"tier+procs {cold:.2f}")
                        print(f"repeat {i + 1}: " + "  ".join(line) + "  (cold/--force/no-op)", flush=True)
                    finally:
                        for server in servers:
                            server.stop()
        finally:
            moto.stop()

    plain = statistics.median(results["plain"])
    print(f"\nreference workload, median of {args.repeats} (ratio to plain Python; tier/local):")
    for kind in ("cold", "--force", "no-op"):
        local, tier = (statistics.median(results[f"{s} {kind}"]) for s in ("local", "tier"))
        print(
            f"  {kind:8s} local {local:6.2f} s ({local / plain:.2f}x)   tier {tier:6.2f} s ({tier / plain:.2f}x)"
            f"   tier/local {tier / local:.2f}x"
        )
    procs = statistics.median(results["tier + procs cold"])
    print(f"  cold, tier + a process per step: {procs:.2f} s ({procs / plain:.2f}x)")
    print(f"  plain python: {plain:.2f} s")
    print("\nstep times from the run summaries (median s):")
    for name in ("local cold", "tier cold", "tier + procs cold", "local --force", "tier --force"):
        cells = "  ".join(f"{step} {statistics.median(v):.2f}" for step, v in sorted(steps.get(name, {}).items()))
        print(f"  {name:18s} {cells}")


if __name__ == "__main__":
    main()
