"""Benchmark: `slipway run` on the reference workload vs the same work in plain Python.

Usage: ``uv run python benchmarks/reference.py [--repeats 5] [--against OTHER_CHECKOUT]``

``--against`` times another checkout of Slipway (with its own ``.venv``, e.g. a ``git worktree``
of an earlier commit) side by side on the same data: each repeat runs both, in alternating
order, so a same-day A/B sees the same machine load.

Each repeat runs, in fresh processes and alternating:
  - plain:  ``benchmarks/plain_reference.py`` (no tracking);
  - cold:   ``slipway run`` on a new, empty SLIPWAY_HOME (Dagster instance and MLflow created,
            run tracked, model logged, registered and aliased);
  - retrain: ``slipway run --force`` on that home (stores exist; full tracking, registration
            and champion comparison);
  - no-op:  ``slipway run`` again on that home with nothing changed (everything reused).
Then the per-asset overhead: ``slipway run`` with 10 vs 50 trivial dataset assets (cold each),
against a plain loop doing the same generation. Then a no-op ``slipway run`` on the bundled examples, and the no-op at scale: a generated folder of
``--pipelines`` pipelines (default 200) built once, then ``slipway run`` with nothing changed,
with its no-op cache and with the cache deleted (decided from the Dagster instance and MLflow).
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

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent))

REFERENCE = """
type: assets.Pipeline
attributes:
  name: reference
  datasets:
    table:
      source: {path: %(csv)s}
      drift: {method: ks, threshold: 0.1}
  models:
    forest:
      dataset: table
      target: y
      estimator: sklearn.ensemble.RandomForestRegressor
      params: {n_estimators: 50, n_jobs: 1, random_state: 0}
      split: {test_size: 0.2, seed: 0}
      metrics: [rmse]
"""

TRIVIAL_PLAIN = """
import sys
from assets.data.generators import regression
for i in range(int(sys.argv[1])):
    regression(rows=10, seed=i, features=3)
"""


def write_reference(root: Path) -> tuple[Path, Path]:
    """The reference data (20,000 rows x 20 features) and its pipeline under ``root``: (csv, defs/reference)."""
    from assets.data.generators import regression

    defs = root / "defs" / "reference"
    defs.mkdir(parents=True)
    csv = defs / "reference.csv"  # inside the pipeline's folder: a source reads its project's files
    regression(rows=20_000, seed=0, features=20).to_csv(csv, index=False)
    (defs / "defs.yaml").write_text(REFERENCE % {"csv": csv.name})
    return csv, defs


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of one command; exit with its output if it fails."""
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def trivial_defs(root: Path, count: int) -> Path:
    """A defs folder with one pipeline of ``count`` trivial generated datasets."""
    folder = root / f"trivial{count}" / "chain"
    folder.mkdir(parents=True)
    datasets = "\n".join(
        f"    d{i}: {{source: {{generator: regression, rows: 10, seed: {i}, params: {{features: 3}}}}}}"
        for i in range(count)
    )
    (folder / "defs.yaml").write_text(f"type: assets.Pipeline\nattributes:\n  name: chain\n  datasets:\n{datasets}\n")
    return folder.parent


MANY = """
type: assets.Pipeline
attributes:
  name: p%(i)03d
  datasets:
    rows:
      source: {path: data.csv}
      expectations:
        - {expect: column_values_to_not_be_null, column: y}
  models:
    tree:
      dataset: rows
      target: y
      estimator: sklearn.tree.DecisionTreeRegressor
      params: {max_depth: 3, random_state: 0}
      metrics: [rmse]
"""


def many_defs(root: Path, count: int) -> Path:
    """A defs folder of ``count`` pipelines, each a small CSV dataset (with an expectation) and a model."""
    from assets.data.generators import regression

    folder = root / f"many{count}"
    table = regression(rows=50, seed=0, features=3)
    for i in range(count):
        pipeline = folder / f"p{i:03d}"
        pipeline.mkdir(parents=True)
        table.to_csv(pipeline / "data.csv", index=False)
        (pipeline / "defs.yaml").write_text(MANY % {"i": i})
    return folder


def no_op_at_scale(root: Path, env: dict[str, str], count: int, repeats: int) -> None:
    """A no-op `slipway run` over ``count`` pipelines: cached, and decided from the instance."""
    folder = many_defs(root, count)
    run_env = {**env, "SLIPWAY_HOME": str(root / f"many-home{count}")}
    slipway = [str(BIN / "slipway"), "--defs", str(folder), "run"]
    cold = timed(slipway, run_env)
    cached, decided = [], []
    for _ in range(repeats):
        cached.append(timed(slipway, run_env))
        (root / f"many-home{count}" / "state" / "noop-local.json").unlink()
        decided.append(timed(slipway, run_env))
    print(f"\n{count} pipelines ({2 * count} assets, {count} file sources), median of {repeats}:")
    print(f"  first run (builds everything)          {cold:6.2f} s")
    print(f"  no-op, cache valid                     {statistics.median(cached):6.2f} s   (target < 2 s)")
    print(f"  no-op, decided from the instance       {statistics.median(decided):6.2f} s   (cache deleted)")


def no_op_examples(root: Path, env: dict[str, str], repeats: int) -> None:
    """A no-op `slipway run` on the bundled examples (definitions/defs)."""
    run_env = {**env, "SLIPWAY_HOME": str(root / "examples-home")}
    slipway = [str(BIN / "slipway"), "run"]
    cold = timed(slipway, run_env)
    warm = [timed(slipway, run_env) for _ in range(repeats)]
    print(f"\nbundled examples, median of {repeats}:")
    print(f"  first run (builds everything)          {cold:6.2f} s")
    print(f"  no-op, cache valid                     {statistics.median(warm):6.2f} s   (target < 0.5 s)")


def _three(slipway: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Cold, --force and no-op `slipway run` on a new home."""
    return timed(slipway, env), timed([*slipway, "--force"], env), timed(slipway, env)


def against(other: Path, repeats: int) -> None:
    """The reference workload on this checkout and ``other``, alternating, with the plain baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv, defs = write_reference(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
        trees = {"this": BIN / "slipway", "other": other / ".venv" / "bin" / "slipway"}
        times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
        plain = []
        for i in range(repeats):
            plain.append(timed([sys.executable, str(HERE / "plain_reference.py"), str(csv)], env))
            for name in sorted(trees, reverse=i % 2 == 1):  # alternate which goes first
                run_env = {**env, "SLIPWAY_HOME": str(root / f"{name}-{i}")}
                times[name].append(_three([str(trees[name]), "--defs", str(defs.parent), "run"], run_env))
            print(
                f"repeat {i + 1}: plain {plain[-1]:.2f}s  "
                + "  ".join(f"{name} {' / '.join(f'{t:.2f}' for t in times[name][-1])}s" for name in trees),
                flush=True,
            )
        p = statistics.median(plain)
        print(f"\nreference workload, median of {repeats} (cold / --force / no-op), plain python {p:.2f} s:")
        medians = {name: [statistics.median(t[k] for t in runs) for k in range(3)] for name, runs in times.items()}
        for name, (c, r, w) in medians.items():
            print(f"  {name:5} {trees[name].parent.parent.parent}: {c:6.2f} s ({c / p:.2f}x)  {r:6.2f} s  {w:6.2f} s")
        this, that = medians["this"], medians["other"]
        print("  this vs other: " + "  ".join(f"{(a / b - 1) * 100:+.1f} %" for a, b in zip(this, that, strict=True)))
        # The framework's own cost, without the training: 10 and 50 trivial assets, alternating.
        folders = {n: trivial_defs(root, n) for n in (10, 50)}
        trivial: dict[tuple[str, int], list[float]] = {(name, n): [] for name in trees for n in folders}
        for i in range(repeats):
            for name in sorted(trees, reverse=i % 2 == 1):
                for n, folder in folders.items():
                    run_env = {**env, "SLIPWAY_HOME": str(root / f"{name}-trivial{n}-{i}")}
                    trivial[(name, n)].append(timed([str(trees[name]), "--defs", str(folder), "run"], run_env))
        print(f"\ntrivial assets, median of {repeats} (a new home each):")
        for name in trees:
            m10, m50 = (statistics.median(trivial[(name, n)]) for n in (10, 50))
            print(
                f"  {name:5} 10 assets {m10:.2f} s, 50 assets {m50:.2f} s, per asset {(m50 - m10) / 40 * 1000:.1f} ms"
            )


def main() -> None:
    """Run every measurement and print the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipelines", type=int, default=200, help="pipelines for the no-op at scale (0: skip)")
    parser.add_argument("--against", type=Path, help="another checkout (with its .venv) to time side by side")
    args = parser.parse_args()
    if args.against is not None:
        against(args.against.resolve(), args.repeats)
        return

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv, defs = write_reference(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
        plain, cold, retrain, warm = [], [], [], []
        for i in range(args.repeats):
            home = root / f"home{i}"
            run_env = {**env, "SLIPWAY_HOME": str(home)}
            slipway = [str(BIN / "slipway"), "--defs", str(defs.parent), "run"]
            plain.append(timed([sys.executable, str(HERE / "plain_reference.py"), str(csv)], env))
            cold.append(timed(slipway, run_env))
            retrain.append(timed([*slipway, "--force"], run_env))
            warm.append(timed(slipway, run_env))
            print(
                f"repeat {i + 1}: plain {plain[-1]:.2f}s  cold {cold[-1]:.2f}s  "
                f"retrain {retrain[-1]:.2f}s  no-op {warm[-1]:.2f}s",
                flush=True,
            )
        p, c, r, w = (statistics.median(x) for x in (plain, cold, retrain, warm))
        print(f"\nreference workload, median of {args.repeats}:")
        print(f"  plain python                   {p:6.2f} s  1.00x")
        print(f"  slipway run, new SLIPWAY_HOME  {c:6.2f} s  {c / p:.2f}x   (target <= 1.20x)")
        print(f"  slipway run --force            {r:6.2f} s  {r / p:.2f}x")
        print(f"  slipway run, nothing changed   {w:6.2f} s  {w / p:.2f}x   (target <= 0.25x)")

        per: dict[int, list[float]] = {10: [], 50: []}
        base: dict[int, list[float]] = {10: [], 50: []}
        folders = {n: trivial_defs(root, n) for n in per}
        for i in range(args.repeats):
            for n in per:
                run_env = {**env, "SLIPWAY_HOME": str(root / f"triv{n}-{i}")}
                per[n].append(timed([str(BIN / "slipway"), "--defs", str(folders[n]), "run"], run_env))
                base[n].append(
                    timed([sys.executable, "-c", TRIVIAL_PLAIN, str(n)], {**env, "PYTHONPATH": str(HERE.parent)})
                )
        m10, m50 = statistics.median(per[10]), statistics.median(per[50])
        b10, b50 = statistics.median(base[10]), statistics.median(base[50])
        print(f"\ntrivial assets, median of {args.repeats} (independent dataset assets in one run):")
        print(f"  10 assets: slipway {m10:.2f} s, plain {b10:.2f} s")
        print(f"  50 assets: slipway {m50:.2f} s, plain {b50:.2f} s")
        print(f"  per-asset overhead: {(m50 - m10) / 40 * 1000:.0f} ms (plain: {(b50 - b10) / 40 * 1000:.1f} ms)")
        no_op_examples(root, env, args.repeats)
        if args.pipelines:
            no_op_at_scale(root, env, args.pipelines, args.repeats)


if __name__ == "__main__":
    main()
