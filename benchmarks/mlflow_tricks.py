"""Benchmark: what each MLflow speed trick in ``resources/mlflow_client.py`` buys on a cold run.

Usage: ``uv run python benchmarks/mlflow_tricks.py [--repeats 5]``

Each variant is ``slipway run`` on the reference workload of ``benchmarks/reference.py`` (same
YAML, same generated CSV) on a new, empty SLIPWAY_HOME, in a fresh process, with one trick
switched off by a patch applied before the CLI starts:

  - shipped:           all tricks on, as the code ships;
  - no warm-up thread: ``prewarm`` only installs the alembic lock; the client is built on first
                       use, after training;
  - no package map:    the warm-up thread runs, but MLflow's module-to-package map is not built
                       there (as if a later MLflow dropped ``_init_modules_to_packages_map``), so
                       ``save_model`` builds it after training.

The alembic lock is a fix for a crash, not a speed trick, and is on in every variant; the eager
store touch is not measured either (MLflow 3.17's ``MlflowClient()`` already opens the tracking
store; see ``tests/resources/test_mlflow_tricks.py``). One discarded run warms the OS file cache
first; then each repeat runs every variant once, starting one variant later each time. Prints
the medians and each variant's difference from ``shipped`` (positive: the trick saves that
much). Writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

RUN_CLI = "from definitions.cli.main import entry\nentry()\n"

# Each patch runs before the CLI is imported; every variant pays for the same `python -c` start.
VARIANTS: dict[str, str] = {
    "shipped": "",
    "no warm-up thread": """
from resources import mlflow_client
mlflow_client.prewarm = lambda *args, **kwargs: mlflow_client._serialize_alembic()
""",
    "no package map": """
from resources import mlflow_client
warm = mlflow_client._warm_model_saving

def without_map():
    # The shipped function, seeing an MLflow without the private helper (it skips quietly).
    from mlflow.utils import requirements_utils
    init = requirements_utils._init_modules_to_packages_map
    del requirements_utils._init_modules_to_packages_map
    try:
        warm()
    finally:
        requirements_utils._init_modules_to_packages_map = init

mlflow_client._warm_model_saving = without_map
""",
}


def reference_defs(root: Path) -> Path:
    """The reference workload of ``benchmarks/reference.py``: its CSV and defs folder under ``root``."""
    from assets.data.generators import regression
    from benchmarks.reference import REFERENCE

    defs = root / "defs" / "reference"
    defs.mkdir(parents=True)
    csv = defs / "reference.csv"  # inside the pipeline's folder: a source reads its project's files
    regression(rows=20_000, seed=0, features=20).to_csv(csv, index=False)
    (defs / "defs.yaml").write_text(REFERENCE % {"csv": csv.name})
    return defs.parent


def cold_run(variant: str, defs: Path, home: Path, env: dict[str, str]) -> float:
    """Wall time of ``slipway --defs defs run`` on the new ``home``, with ``variant``'s patch applied."""
    from benchmarks.reference import timed

    code = VARIANTS[variant] + RUN_CLI
    return timed([sys.executable, "-c", code, "--defs", str(defs), "run"], {**env, "SLIPWAY_HOME": str(home)})


def main() -> None:
    """Run every variant ``--repeats`` times and print the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    names = list(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        defs = reference_defs(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
        print(f"warm-up run (discarded): {cold_run('shipped', defs, root / 'home-warmup', env):.2f}s", flush=True)
        times: dict[str, list[float]] = {name: [] for name in names}
        for i in range(args.repeats):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                times[name].append(cold_run(name, defs, root / f"home{i}-{names.index(name)}", env))
            print(f"repeat {i + 1}: " + "  ".join(f"{name} {times[name][-1]:.2f}s" for name in names), flush=True)
    shipped = statistics.median(times["shipped"])
    print(f"\nslipway run on a new SLIPWAY_HOME, reference workload, median of {args.repeats}:")
    print(f"  {'variant':<20} {'median':>8} {'min-max':>13} {'vs shipped':>18}")
    for name in names:
        median = statistics.median(times[name])
        spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
        delta = "" if name == "shipped" else f"{median - shipped:+.2f} s {100 * (median - shipped) / shipped:+.1f}%"
        print(f"  {name:<20} {median:6.2f} s {spread:>13} {delta:>18}")


if __name__ == "__main__":
    main()
