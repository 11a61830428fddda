"""Benchmark: drift computation, and a retrain sensor tick when no data changed.

Usage: ``uv run python benchmarks/drift.py [--repeats 5] [--rows 1000000] [--features 20] [--models 50]``

1. Drift: a reference and a current table of ``rows`` x ``features`` numeric columns (normal,
   the current one shifted by 0.05). Timed in this process, median of ``repeats``:
   - slipway: ``StatisticalDriftDetector().compare(...)`` for each method (psi, ks, chi2),
     every feature, the dataset's verdict included;
   - plain, per feature, in the same run: ``scipy.stats.ks_2samp`` for ks; numpy
     ``quantile`` + ``histogram`` and the PSI sum for psi; numpy binning +
     ``scipy.stats.chi2_contingency`` for chi2.
2. Tick: a temporary SLIPWAY_HOME with ``models`` pipelines (a CSV-sourced dataset and a model
   with ``retrain: {on_new_data: true, on_drift: ...}``), built once by ``slipway run``. Then,
   in this process with the code location loaded (as the code server holds it), the
   ``slipway_retrain`` sensor's evaluation is timed when nothing changed, median of ``repeats``.
Prints medians; writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def drift(rows: int, features: int, repeats: int) -> None:
    """Part 1: drift of every method against the plain per-feature computation."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    from resources.drift import StatisticalDriftDetector

    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(features)]
    reference = pd.DataFrame(rng.normal(size=(rows, features)), columns=columns)
    current = pd.DataFrame(rng.normal(0.05, 1, size=(rows, features)), columns=columns)

    def plain_psi() -> None:
        for c in columns:
            ref, cur = reference[c].to_numpy(), current[c].to_numpy()
            edges = np.quantile(ref, np.linspace(0, 1, 11))
            edges[0], edges[-1] = -np.inf, np.inf
            e = np.clip(np.histogram(ref, edges)[0] / len(ref), 1e-6, None)
            a = np.clip(np.histogram(cur, edges)[0] / len(cur), 1e-6, None)
            float(np.sum((a - e) * np.log(a / e)))

    def plain_ks() -> None:
        for c in columns:
            stats.ks_2samp(reference[c].to_numpy(), current[c].to_numpy())

    def plain_chi2() -> None:
        for c in columns:
            ref, cur = reference[c].to_numpy(), current[c].to_numpy()
            edges = np.quantile(ref, np.linspace(0, 1, 11))
            edges[0], edges[-1] = -np.inf, np.inf
            table = np.vstack([np.histogram(ref, edges)[0], np.histogram(cur, edges)[0]])
            stats.chi2_contingency(table, correction=False)

    plain = {"psi": plain_psi, "ks": plain_ks, "chi2": plain_chi2}
    print(f"drift: {rows:,} rows x {features} features vs a reference of the same size, median of {repeats}")
    print(f"{'method':8} {'slipway (2 threads)':>20} {'slipway (1 thread)':>20} {'plain per feature':>20}")
    for method in ("psi", "ks", "chi2"):
        timings = []
        for detector in (StatisticalDriftDetector(), StatisticalDriftDetector(workers=1)):
            timings.append(
                _median(lambda d=detector, m=method: d.compare(reference, current, m, 0.2, columns), repeats)
            )
        fast, single = timings
        base = _median(plain[method], repeats)
        print(f"{method:8} {fast:19.2f}s {single:19.2f}s {base:19.2f}s")


PIPELINE = """\
type: assets.Pipeline
attributes:
  name: p{i:03d}
  datasets:
    customers:
      source: {{path: data/batch_*.csv}}
  models:
    clf:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges, support_calls]
      estimator: sklearn.linear_model.LogisticRegression
      split: {{by: customer_id}}
      metrics: [roc_auc]
      retrain: {{on_new_data: true, on_drift: {{threshold: 0.2}}, cooldown: 1h, max_per_day: 4}}
"""


def tick(models: int, repeats: int) -> None:
    """Part 2: the retrain sensor's tick on a home where nothing changed."""
    from assets.data.generators import churn

    with tempfile.TemporaryDirectory(prefix="slipway-bench-tick-") as tmp:
        root = Path(tmp)
        defs = root / "defs"
        for i in range(models):
            folder = defs / f"p{i:03d}"
            (folder / "data").mkdir(parents=True)
            (folder / "defs.yaml").write_text(PIPELINE.format(i=i))
            churn(200, seed=i).to_csv(folder / "data" / "batch_000.csv", index=False)
        env = {**os.environ, "SLIPWAY_HOME": str(root / "home")}
        env.pop("SLIPWAY_STACK", None)
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "slipway"), "--defs", str(defs), "run"],
            env=env,
            check=True,
            capture_output=True,
        )
        print(f"tick: {models} models with a retrain policy, built in {time.perf_counter() - started:.1f}s")
        os.environ["SLIPWAY_HOME"] = env["SLIPWAY_HOME"]
        import dagster as dg

        from assets.automation.retrain import evaluate
        from definitions.definitions import build_definitions
        from stacks import load_stack
        from stacks.build import prepare_instance

        code_location = build_definitions(defs)
        with dg.DagsterInstance.from_config(str(prepare_instance(load_stack().stack))) as instance:
            context = dg.build_sensor_context(
                instance=instance, definitions=code_location, resources=code_location.resources
            )
            result = evaluate(context)
            assert "idle: trained on the newest data" in str(result), result
            seconds = _median(lambda: evaluate(context), repeats)
        print(f"  slipway_retrain tick, nothing changed: {seconds * 1000:.0f} ms (median of {repeats})")


def main() -> None:
    """Both parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--models", type=int, default=50)
    args = parser.parse_args()
    drift(args.rows, args.features, args.repeats)
    tick(args.models, args.repeats)


if __name__ == "__main__":
    main()
