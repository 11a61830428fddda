"""Benchmark: a 24-trial grid by `slipway run` vs a plain Python loop training the same 24 models.

Usage: ``uv run python benchmarks/sweep.py [--repeats 3] [--rows 20000]``

The reference workload's data (``benchmarks/reference.py``: 20,000 rows x 20 numeric features) and
a RandomForestRegressor (``n_jobs: 1, random_state: 0``) swept over ``max_depth: {range: [2, 24,
2]}`` x ``n_estimators: [10, 30]`` (24 trials), scored by RMSE on a 20 % split. Each repeat, in
fresh processes on a new SLIPWAY_HOME:

  - plain:      a script that reads the CSV, splits it, fits and scores the 24 models in a loop;
  - sequential: ``slipway run`` on the local stack (in-process executor): the dataset built, 24
                trial steps (each an MLflow run), the winner registered and promoted;
  - parallel:   the same on a multiprocess stack with ``parallelism: 2`` (each step a process
                of its own, two trials at once; the winner is fitted again in its own step);
  - two more:   after the first sequential run, two grid points added (``max_depth`` up to 26):
                ``slipway run`` again, and the number of trials it trained, read from MLflow.

Prints medians, the ratio of sequential to plain (the issue's target: at most 1.15x) and the
speed-up of parallel over sequential.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from partitions import timed  # noqa: E402  (the same timing as the partitions benchmark)

PIPELINE = """
type: assets.Pipeline
attributes:
  name: sweep
  datasets:
    table:
      source: {path: reference.csv}
  models:
    forest:
      dataset: table
      target: y
      estimator: sklearn.ensemble.RandomForestRegressor
      params: {n_jobs: 1, random_state: 0}
      split: {test_size: 0.2, seed: 0}
      metrics: [rmse]
      sweep:
        params: {max_depth: {range: [2, %(top)d, 2]}, n_estimators: [10, 30]}
        parallelism: %(parallelism)d
"""

PLAIN = """
import sys

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import train_test_split

frame = pd.read_csv(sys.argv[1], engine="pyarrow")
x, y = frame.drop(columns=["y"]), frame["y"]
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
scores = {}
for depth in range(2, 25, 2):
    for trees in (10, 30):
        model = RandomForestRegressor(max_depth=depth, n_estimators=trees, n_jobs=1, random_state=0)
        model.fit(x_train, y_train)
        scores[(depth, trees)] = float(np.sqrt(np.mean((model.predict(x_test) - y_test) ** 2)))
print(len(scores), min(scores.values()))
"""


def write(root: Path, rows: int, top: int = 24, parallelism: int = 1) -> Path:
    """The pipeline under ``root/defs/sweep`` with the reference data; returns the defs folder."""
    from assets.data.generators import regression

    folder = root / "defs" / "sweep"
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "reference.csv"
    if not csv.exists():
        regression(rows=rows, seed=0, features=20).to_csv(csv, index=False)
    (folder / "defs.yaml").write_text(PIPELINE % {"top": top, "parallelism": parallelism})
    return folder.parent


def trial_runs(home: Path) -> int:
    """How many trial runs the home's MLflow holds."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home}/mlflow.db")
    experiment = client.get_experiment_by_name("sweep")
    return len(client.search_runs([experiment.experiment_id], "tags.`slipway.trial` != ''", max_results=1000))


def main() -> None:
    """Run the benchmark and print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"plain": [], "sequential": [], "parallel": [], "two more": []}
    trained_after: list[int] = []
    local = (HERE.parent / "stacks" / "local.yaml").read_text()
    with tempfile.TemporaryDirectory(prefix="slipway-sweep-bench-") as tmp:
        root = Path(tmp)
        (root / "plain.py").write_text(PLAIN)
        multiprocess = root / "multiprocess.yaml"
        multiprocess.write_text(
            local.replace(
                "orchestrator:        {type: in_process}", "orchestrator: {type: multiprocess, max_concurrent: 2}"
            )
        )
        for repeat in range(args.repeats):
            base = {**os.environ, "SLIPWAY_ALERTER__TYPE": "log"}
            defs = write(root, args.rows)
            csv = defs / "sweep" / "reference.csv"
            times["plain"].append(timed([str(BIN / "python"), str(root / "plain.py"), str(csv)], base))
            home = root / f"home-seq-{repeat}"
            env = {**base, "SLIPWAY_HOME": str(home)}
            times["sequential"].append(timed([str(BIN / "slipway"), "--defs", str(defs), "run"], env))
            before = trial_runs(home)
            write(root, args.rows, top=26)
            times["two more"].append(timed([str(BIN / "slipway"), "--defs", str(defs), "run"], env))
            trained_after.append(trial_runs(home) - before)
            write(root, args.rows, parallelism=2)
            env = {**base, "SLIPWAY_HOME": str(root / f"home-par-{repeat}"), "SLIPWAY_STACK": str(multiprocess)}
            times["parallel"].append(timed([str(BIN / "slipway"), "--defs", str(defs), "run"], env))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedians of {args.repeats} ({args.rows} rows, 24 trials):")
    for key, value in median.items():
        print(f"  {key:<11} {value:7.2f}s")
    print(f"  sequential / plain: {median['sequential'] / median['plain']:.3f}x (target <= 1.15x)")
    print(
        f"  parallel (2 at once, multiprocess) speed-up over sequential: {median['sequential'] / median['parallel']:.2f}x"
    )
    print(f"  after adding 2 grid points: trained {trained_after} trials (one number per repeat)")


if __name__ == "__main__":
    main()
