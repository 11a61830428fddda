"""Benchmark: a daily-partitioned dataset of small files, built by `slipway run` vs a plain script.

Usage: ``uv run python benchmarks/partitions.py [--days 365] [--repeats 3] [--per-run 100] [--no-expectation]``

A folder of ``--days`` CSV files (one a day, 20 rows each) is a dataset with one partition per
file (``partitions: {discover: files}``, a not-null expectation). Each repeat, in fresh processes:

  - plain:     a Python script that reads each file, checks the column for nulls and writes it
               as Parquet, in one process (what the dataset does per partition, without tracking);
  - first:     ``slipway run`` on a new SLIPWAY_HOME: every partition built, a run each;
  - batched:   the same on another new SLIPWAY_HOME with ``max_partitions_per_run: --per-run``:
               every partition built, up to that many a run;
  - one new:   a file for the next day lands, then ``slipway run`` (batched): that partition alone is built;
  - nothing:   ``slipway run`` again with nothing changed.

``--no-expectation`` drops the expectation (and the plain script's check): what the tracking
costs without the validator's. Prints medians, the per-partition overhead of the first build over plain, and writes nothing
outside a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent

PIPELINE = """
type: assets.Pipeline
attributes:
  name: bench
  datasets:
    events:
      source: {path: "landing/{date}.csv"}
      partitions: {discover: files, max_partitions_per_run: PER_RUN}
      expectations:
        - {expect: column_values_to_not_be_null, column: value}
"""

PLAIN = """
import sys
from pathlib import Path
import pandas as pd
landing, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for path in sorted(landing.glob("*.csv")):
    frame = pd.read_csv(path, engine="pyarrow")
    assert frame["value"].notna().all()
    frame.to_parquet(out / (path.stem + ".parquet"))
"""


def write_day(folder: Path, index: int) -> None:
    """The file of day ``index`` after 2026-01-01: 20 rows."""
    day = dt.date(2026, 1, 1) + dt.timedelta(days=index)
    rows = "\n".join(f"{day},{i},{(index * 7 + i) % 13}.5" for i in range(20))
    (folder / f"{day}.csv").write_text("day,row,value\n" + rows + "\n")


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds ``command`` took; its output when it failed."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def one_repeat(days: int, tmp: Path, per_run: int, expectation: bool = True) -> dict[str, float]:
    """Plain, first build (a run each, then batched), one new file, nothing changed: seconds each, in ``tmp``."""
    import os

    defs = tmp / "defs"
    landing = defs / "bench" / "landing"
    landing.mkdir(parents=True)
    definition = defs / "bench" / "defs.yaml"
    pipeline = PIPELINE if expectation else PIPELINE.split("      expectations:")[0]
    plain = PLAIN if expectation else PLAIN.replace('    assert frame["value"].notna().all()\n', "")
    definition.write_text(pipeline.replace("PER_RUN", "1"))
    for index in range(days):
        write_day(landing, index)
    env = {**os.environ, "SLIPWAY_HOME": str(tmp / "home")}
    slipway = [str(BIN / "slipway"), "run", "--defs", str(defs)]
    found = {"plain": timed([sys.executable, "-c", plain, str(landing), str(tmp / "plain")], env)}
    found["first"] = timed(slipway, {**env, "SLIPWAY_HOME": str(tmp / "home-each")})
    definition.write_text(pipeline.replace("PER_RUN", str(per_run)))  # not part of the code version
    found["batched"] = timed(slipway, env)
    write_day(landing, days)
    found["one new"] = timed(slipway, env)
    found["nothing"] = timed(slipway, env)
    return found


def main() -> None:
    """Run the repeats and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-run", type=int, default=100, help="max_partitions_per_run of the batched build")
    parser.add_argument("--expectation", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="slipway-bench-partitions-") as tmp:
            runs.append(one_repeat(args.days, Path(tmp), args.per_run, args.expectation))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()), flush=True)
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    checked = "a not-null expectation" if args.expectation else "no expectation"
    print(f"\n{args.days} daily files, {checked}, medians of {args.repeats}:")
    for name, seconds in median.items():
        print(f"  {name:<8} {seconds:8.2f} s")
    for name, how in (("first", "a run each"), ("batched", f"up to {args.per_run} a run")):
        overhead = (median[name] - median["plain"]) / args.days
        print(f"  {name} build over plain: {overhead * 1000:.0f} ms per partition ({how})")
    print(f"  one new file: {median['one new']:.2f} s (nothing changed: {median['nothing']:.2f} s)")


if __name__ == "__main__":
    main()
