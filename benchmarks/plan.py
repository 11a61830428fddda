"""Benchmark: `slipway plan A..B` on a generated repository where one model changed.

Usage: ``uv run python benchmarks/plan.py [--repeats 5] [--sizes 20,50,100,200]``

For each size N, a git repository with N pipelines of 5 assets each (two CSV-sourced datasets,
a derived SQL dataset joining them, a derived SQL training table, a model on it: 1,000 assets
for N=200), committed as A; then one model's ``params.alpha`` changed, committed as B.

Each repeat runs, in fresh processes and alternating, for every size:
  - slipway: ``slipway --defs REPO/defs plan A..B --json`` (the whole command: Python start,
    imports, both sides read from git, loaded, checked and diffed);
  - plain:   a script that does the least a person would: ``git archive`` both revisions'
    ``defs/`` folders, ``yaml.safe_load`` every ``defs.yaml`` of both, and compare the parsed
    documents per file (no schema, no checks, no code versions, no graph);
  - python:  ``python -c pass``, the interpreter's start alone.
Prints medians; writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import timed  # noqa: E402

PIPELINE = """\
type: assets.Pipeline
attributes:
  name: p{i:03d}
  datasets:
    orders:
      source: {{path: data/orders.csv}}
      expectations:
        - {{expect: column_values_to_not_be_null, column: amount}}
    customers:
      source: {{path: data/customers.csv}}
    joined:
      inputs: [orders, customers]
      sql: select o.*, c.segment from orders o join customers c using (customer_id)
    training:
      inputs: [joined]
      sql: select amount, segment, day from joined where day > {i}
  models:
    forecast:
      dataset: training
      target: amount
      estimator: sklearn.linear_model.Ridge
      params: {{alpha: 1.0}}
      metrics: [rmse, r2]
      promote: {{gates: {{r2: ">= 0.1"}}}}
"""

PLAIN = r"""
import io, subprocess, sys, tarfile, yaml
repo, a, b = sys.argv[1:4]
def load(rev):
    data = subprocess.run(["git", "archive", "--format=tar", rev, "--", "defs"], cwd=repo, capture_output=True, check=True).stdout
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            if m.name.endswith("defs.yaml"):
                out[m.name] = yaml.safe_load(t.extractfile(m).read())
    return out
before, after = load(a), load(b)
changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
print(len(changed))
"""


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its output."""
    done = subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def make_repo(root: Path, count: int) -> tuple[Path, str, str]:
    """A repository of ``count`` pipelines: (path, commit A, commit B with one model changed)."""
    repo = root / f"repo{count}"
    for i in range(count):
        folder = repo / "defs" / f"p{i:03d}"
        (folder / "data").mkdir(parents=True)
        (folder / "defs.yaml").write_text(PIPELINE.format(i=i))
        (folder / "data" / "orders.csv").write_text("customer_id,amount,day\n1,2.0,3\n")
        (folder / "data" / "customers.csv").write_text("customer_id,segment\n1,a\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "A")
    first = git(repo, "rev-parse", "HEAD")
    changed = repo / "defs" / f"p{count // 2:03d}" / "defs.yaml"
    changed.write_text(changed.read_text().replace("alpha: 1.0", "alpha: 2.0"))
    git(repo, "commit", "-qam", "B")
    return repo, first, git(repo, "rev-parse", "HEAD")


def main() -> None:
    """Run the benchmark and print the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="20,50,100,200")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    slipway = str(Path(sys.executable).with_name("slipway"))
    env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"}
    with tempfile.TemporaryDirectory(prefix="slipway-bench-plan-") as tmp:
        repos = {n: make_repo(Path(tmp), n) for n in sizes}
        script = Path(tmp) / "plain.py"
        script.write_text(PLAIN)
        times: dict[tuple[str, int], list[float]] = {}
        # Check once that the plan finds exactly the one change.
        for repo, a, b in repos.values():
            out = subprocess.run(
                [slipway, "--defs", str(repo / "defs"), "plan", f"{a}..{b}", "--exit-code"],
                capture_output=True,
                text=True,
            )
            assert out.returncode == 2 and "1 rebuild, 1 model retrains" in out.stdout, out.stdout + out.stderr
        for _ in range(args.repeats):
            for n, (repo, a, b) in repos.items():
                times.setdefault(("slipway", n), []).append(
                    timed([slipway, "--defs", str(repo / "defs"), "plan", f"{a}..{b}", "--json"], env)
                )
                times.setdefault(("plain", n), []).append(timed([sys.executable, str(script), str(repo), a, b], env))
                times.setdefault(("python", n), []).append(timed([sys.executable, "-c", "pass"], env))
    print(f"slipway plan A..B, one model changed; median of {args.repeats} (seconds)")
    print(f"{'pipelines':>9} {'assets':>7} {'slipway':>8} {'plain':>7} {'python':>7} {'ratio':>6}")
    for n in sizes:
        s, p, py = (statistics.median(times[(k, n)]) for k in ("slipway", "plain", "python"))
        print(f"{n:>9} {n * 5:>7} {s:>8.2f} {p:>7.2f} {py:>7.2f} {s / p:>5.1f}x")


if __name__ == "__main__":
    main()
