"""Benchmark: a model on a 90-day window, after one new day, by `slipway run` vs plain Python.

Usage: ``uv run python benchmarks/window_model.py [--days 95] [--window 90] [--rows 223] [--repeats 3]``

The reference workload (``benchmarks/plain_reference.py``: 20 numeric features,
RandomForestRegressor(n_estimators=50, n_jobs=1, random_state=0), RMSE on a 20 % split) split into
days: ``--days`` daily CSV files of ``--rows`` rows each (90 x 223 = the reference's 20,000 rows),
a dataset partitioned by day and a model with ``window: 90``. Each repeat, in a new folder and
fresh processes:

  - first:    ``slipway run`` on a new SLIPWAY_HOME (every day built, the model trained; set-up);
  - then a file for the next day lands, and side by side:
  - plain:    a script that reads the 90 latest files, trains and scores the same model;
  - one day:  ``slipway run``: that day's partition built, the model trained on the last 90 days,
              tracked in MLflow, registered and compared with its champion.

Prints medians and the ratio of "one day" to "plain" (the issue's target: at most 1.2x).
"""

from __future__ import annotations

import argparse
import datetime as dt
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
  name: window
  datasets:
    days:
      source: {path: "landing/{date}.csv"}
      partitions: {discover: files}
  models:
    forest:
      dataset: days
      window: %(window)d
      target: y
      estimator: sklearn.ensemble.RandomForestRegressor
      params: {n_estimators: 50, n_jobs: 1, random_state: 0}
      split: {test_size: 0.2, seed: 0}
      metrics: [rmse]
"""

PLAIN = """
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import train_test_split

files = sorted(Path(sys.argv[1]).glob("*.csv"))[-int(sys.argv[2]):]
frame = pd.concat([pd.read_csv(f, engine="pyarrow") for f in files], ignore_index=True)
x, y = frame.drop(columns=["y"]), frame["y"]
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
model = RandomForestRegressor(n_estimators=50, n_jobs=1, random_state=0).fit(x_train, y_train)
print(len(frame), float(np.sqrt(np.mean((model.predict(x_test) - y_test) ** 2))))
"""


def write_day(folder: Path, index: int, rows: int) -> None:
    """Day ``index`` after 2026-01-01: ``rows`` rows of the reference's generator, a seed per day."""
    from assets.data.generators import regression

    day = dt.date(2026, 1, 1) + dt.timedelta(days=index)
    regression(rows=rows, seed=index, features=20).to_csv(folder / f"{day}.csv", index=False)


def one_repeat(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    """First build (set-up), then plain and one new day side by side: seconds each."""
    defs = tmp / "defs"
    landing = defs / "window" / "landing"
    landing.mkdir(parents=True)
    (defs / "window" / "defs.yaml").write_text(PIPELINE % {"window": args.window})
    for index in range(args.days):
        write_day(landing, index, args.rows)
    env = {**os.environ, "SLIPWAY_HOME": str(tmp / "home")}
    slipway = [str(BIN / "slipway"), "run", "--defs", str(defs)]
    found = {"first": timed(slipway, env)}
    write_day(landing, args.days, args.rows)
    found["plain"] = timed([sys.executable, "-c", PLAIN, str(landing), str(args.window)], env)
    found["one day"] = timed(slipway, env)
    return found


def main() -> None:
    """Run the repeats and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=95)
    parser.add_argument("--window", type=int, default=90)
    parser.add_argument("--rows", type=int, default=223)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="slipway-bench-window-") as tmp:
            runs.append(one_repeat(args, Path(tmp)))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()), flush=True)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"\n{args.days} + 1 days of {args.rows} rows, window {args.window}, medians of {args.repeats}:")
    for name, seconds in median.items():
        print(f"  {name:<8} {seconds:8.2f} s")
    print(f"  one new day / plain: {median['one day'] / median['plain']:.2f}x (target: at most 1.2x)")


if __name__ == "__main__":
    main()
