"""Benchmark: batch scoring and online serving of a registered model, beside what they stand in for.

Usage: ``uv run python benchmarks/serving.py [--rows 1000000] [--repeats 3] [--requests 500]``

Trains a ``RandomForestClassifier`` (50 trees) on the churn generator's rows with `slipway run`
in a temporary SLIPWAY_HOME, registers a second version, then measures, alternating:

Batch (``--rows`` rows of the same features, stored as Parquet):
  - predict:  the loaded model's ``predict`` on the whole table already in memory (the bar: ≥ 0.9×);
  - plain:    pandas reads the Parquet file, ``predict``, pandas writes the result (the same work by hand);
  - slipway:  :func:`assets.serve.predictions.score_file` (chunks of 100,000 rows read, scored, written).

Online (single-row JSON requests over loopback, one keep-alive client, after 50 warm-up requests):
  - mlflow:   ``mlflow models serve -m models:/bench.clf/1 --env-manager local`` (MLflow's own server);
  - slipway:  ``slipway serve bench/clf`` (the same version, MLflow's scoring app behind the router).
  p50 and p99 latency and requests per second, medians over the repeats.

Swap: a request loop against ``slipway serve`` while the alias is moved v1 → v2 → v1 … ten
times (set directly in the registry); counts failed requests and the versions that answered.
Prints a table; writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent))

PIPELINE = """
type: assets.Pipeline
attributes:
  name: bench
  datasets:
    rows:
      source: {generator: churn, rows: 20000, seed: 0}
  models:
    clf:
      dataset: rows
      target: churned
      features: [tenure, monthly_charges, support_calls, contract_months]
      estimator: sklearn.ensemble.RandomForestClassifier
      params: {n_estimators: 50, max_depth: 10, n_jobs: 1, random_state: 0}
      metrics: [roc_auc]
      promote: {must_beat: null}
"""
FEATURES = ["tenure", "monthly_charges", "support_calls", "contract_months"]


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def setup(root: Path) -> dict[str, str]:
    """Two registered versions of bench.clf in a new home; the environment that points at it."""
    defs = root / "defs" / "bench"
    defs.mkdir(parents=True)
    (defs / "defs.yaml").write_text(PIPELINE)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}, "SLIPWAY_HOME": str(root / "home")}
    for depth in (10, 11):
        (defs / "defs.yaml").write_text(PIPELINE.replace("max_depth: 10", f"max_depth: {depth}"))
        subprocess.run(
            [str(BIN / "slipway"), "--defs", str(root / "defs"), "run"], env=env, check=True, capture_output=True
        )
    return env


def batch(root: Path, rows: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each batch way, per repeat."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow import MlflowClient

    from assets.data.generators import churn
    from assets.serve.predictions import score_file

    uri = f"sqlite:///{root / 'home' / 'mlflow.db'}"
    source = MlflowClient(tracking_uri=uri).get_model_version_download_uri("bench.clf", "1")
    model = mlflow.sklearn.load_model(source)
    table = root / "rows.parquet"
    base = churn(20_000, seed=5)[FEATURES]
    pd.concat([base] * (rows // len(base) + 1), ignore_index=True).head(rows).to_parquet(table, index=False)
    frame = pd.read_parquet(table)
    times: dict[str, list[float]] = {"predict": [], "plain": [], "slipway": []}
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(frame)
        times["predict"].append(time.perf_counter() - started)

        started = time.perf_counter()
        plain = pd.read_parquet(table)
        plain["prediction"] = model.predict(plain[FEATURES])
        plain.to_parquet(root / "plain.parquet", index=False)
        times["plain"].append(time.perf_counter() - started)

        started = time.perf_counter()
        out, _ = score_file(table, model, "prediction", 100_000)
        times["slipway"].append(time.perf_counter() - started)
        out.unlink()
    return times


def _serve(cmd: list[str], env: dict[str, str], url: str) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"{cmd[:3]} exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"{cmd[:3]} never became ready")


def latencies(url: str, count: int) -> tuple[float, float, float]:
    """p50 and p99 (ms) and requests/s of ``count`` single-row requests, after 50 warm-up ones."""
    import httpx

    body = {"dataframe_split": {"columns": FEATURES, "data": [[12, 70.5, 2, 12]]}}
    seen = []
    with httpx.Client(timeout=30) as client:
        for _ in range(50):
            client.post(f"{url}/invocations", json=body).raise_for_status()
        started = time.perf_counter()
        for _ in range(count):
            t = time.perf_counter()
            client.post(f"{url}/invocations", json=body).raise_for_status()
            seen.append((time.perf_counter() - t) * 1000)
        total = time.perf_counter() - started
    seen.sort()
    return seen[len(seen) // 2], seen[min(len(seen) - 1, int(len(seen) * 0.99))], count / total


def online(root: Path, env: dict[str, str], repeats: int, count: int) -> dict[str, list[tuple[float, float, float]]]:
    """(p50, p99, req/s) of each server, per repeat, alternating."""
    uri = f"sqlite:///{root / 'home' / 'mlflow.db'}"
    found: dict[str, list[tuple[float, float, float]]] = {"mlflow": [], "slipway": []}
    for _ in range(repeats):
        for name in ("mlflow", "slipway"):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            if name == "mlflow":
                cmd = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/bench.clf/1", "--env-manager", "local"]
                cmd += ["-h", "127.0.0.1", "-p", str(port)]
                path = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs uvicorn by name
                proc = _serve(cmd, {**env, "MLFLOW_TRACKING_URI": uri, "PATH": path}, url)
            else:
                cmd = [
                    str(BIN / "slipway"),
                    "--defs",
                    str(root / "defs"),
                    "serve",
                    "bench/clf@v1pin",
                    "--port",
                    str(port),
                ]
                proc = _serve(cmd, env, url)
            try:
                found[name].append(latencies(url, count))
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    return found


def swap(root: Path, env: dict[str, str], moves: int) -> tuple[int, int, dict[str, int]]:
    """Requests during ``moves`` alias moves: (requests, failed, answers by version)."""
    import httpx
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'home' / 'mlflow.db'}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "slipway"), "--defs", str(root / "defs"), "serve", "bench/clf@v1pin", "--port", str(port)]
    cmd += ["--poll", "0.2"]
    proc = _serve(cmd, env, url)
    stop, results = threading.Event(), []

    def loop() -> None:
        body = {"dataframe_split": {"columns": FEATURES, "data": [[12, 70.5, 2, 12]]}}
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                try:
                    answer = http.post(f"{url}/invocations", json=body)
                    results.append((answer.status_code, answer.headers.get("x-slipway-model-version")))
                except httpx.HTTPError:
                    results.append((0, None))

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        for i in range(moves):
            client.set_registered_model_alias("bench.clf", "v1pin", "2" if i % 2 == 0 else "1")
            time.sleep(1.0)
    finally:
        stop.set()
        worker.join()
        proc.terminate()
        proc.wait(timeout=60)
    by_version: dict[str, int] = {}
    for _, version in results:
        by_version[str(version)] = by_version.get(str(version), 0) + 1
    return len(results), sum(1 for status, _ in results if status != 200), by_version


def main() -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--online-only", action="store_true", help="skip the batch and swap measurements")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-serving-") as tmp:
        root = Path(tmp)
        env = setup(root)
        from mlflow import MlflowClient

        # An alias of its own, so that no promotion rule of the pipeline moves it during the runs.
        MlflowClient(tracking_uri=f"sqlite:///{root / 'home' / 'mlflow.db'}").set_registered_model_alias(
            "bench.clf", "v1pin", "1"
        )
        if not args.online_only:
            times = batch(root, args.rows, args.repeats)
            median = {k: statistics.median(v) for k, v in times.items()}
            print(f"batch: {args.rows:,} rows, RandomForestClassifier(50 trees), medians of {args.repeats}")
            for name in ("predict", "plain", "slipway"):
                rate = args.rows / median[name]
                ratio = median["predict"] / median[name]
                print(f"  {name:8s} {median[name]:7.2f} s  {rate:12,.0f} rows/s  {ratio:5.2f}x predict")
        found = online(root, env, args.repeats, args.requests)
        print(f"online: {args.requests} single-row JSON requests, one keep-alive client, medians of {args.repeats}")
        for name in ("mlflow", "slipway"):
            p50 = statistics.median(r[0] for r in found[name])
            p99 = statistics.median(r[1] for r in found[name])
            rps = statistics.median(r[2] for r in found[name])
            print(f"  {name:8s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  {rps:7.1f} req/s")
        p50s = {n: statistics.median(r[0] for r in found[n]) for n in found}
        print(f"  slipway p50 / mlflow p50: {p50s['slipway'] / p50s['mlflow']:.2f}")
        if args.online_only:
            return
        total, failed, by_version = swap(root, env, args.moves)
        print(
            f"swap: {args.moves} alias moves under a request loop: {total} requests, {failed} failed, by version {by_version}"
        )


if __name__ == "__main__":
    main()
