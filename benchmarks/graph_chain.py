"""Benchmark: a chain of derived SQL datasets under `slipway run` vs the same queries in plain DuckDB.

Usage: ``uv run python benchmarks/graph_chain.py [--repeats 5] [--sizes 10,50] [--calls 200]``

A pipeline ``chain`` of one dataset ``d0`` read from a 10,000-row CSV (columns id, x, y; seeded
numpy) and ``N`` derived datasets ``d1..dN``, each ``inputs: [d{i-1}]`` and
``sql: select id, x + 1 as x, y * 0.5 + x as y from d{i-1}`` (10,000 rows each). No models.

Each repeat runs, in fresh processes and alternating, for every size N:
  - slipway: ``slipway --defs FOLDER run`` on a new, empty SLIPWAY_HOME (cold: everything built);
  - plain:   a script that reads the CSV with pandas, opens one in-memory ``duckdb.connect()``,
             then for each of the N queries registers the previous DataFrame, executes the same
             SQL, fetches ``.df()`` and unregisters the input (what a person would write). Its
             time includes starting Python and importing pandas and duckdb, as Slipway's
             includes its imports;
  - imports: ``python -c "import pandas, duckdb"`` alone, to show that part of the plain time.
Per-asset overhead is the marginal cost of an asset beyond the plain work, between the smallest
and the largest size: ((slipway_big - plain_big) - (slipway_small - plain_small)) / (big - small);
the simple (slipway_N - plain_N) / N is shown too.

Then the SQL step on its own, in this process: ``resources.query.DuckdbEngine.run`` (Slipway's SQL step:
a new connection to its locked-down database, the query checked, registered, run, fetched)
against the plain register/execute/df/unregister on one open connection, on the 10,000-row
frame, ``--calls`` calls each in alternating blocks, median per call.
Prints medians; writes nothing outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from reference import timed  # noqa: E402  (one way to time a command, shared with reference.py)

ROWS = 10_000
SQL = "select id, x + 1 as x, y * 0.5 + x as y from {input}"

PLAIN = """
import sys
import duckdb
import pandas as pd

csv, count, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3]
frame = pd.read_csv(csv)
connection = duckdb.connect()
for i in range(1, count + 1):
    connection.register(f"d{i - 1}", frame)
    frame = connection.execute(sql.format(input=f"d{i - 1}")).df()
    connection.unregister(f"d{i - 1}")
connection.close()
assert len(frame) == int(sys.argv[4]), len(frame)
"""

IMPORTS = "import duckdb, pandas"


def write_csv(path: Path) -> None:
    """``ROWS`` rows of id (int), x and y (float), seeded."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    pd.DataFrame({"id": np.arange(ROWS), "x": rng.normal(size=ROWS), "y": rng.normal(size=ROWS)}).to_csv(
        path, index=False
    )


def chain_defs(root: Path, count: int) -> Path:
    """A defs folder with one pipeline ``chain``: ``d0`` from the CSV, then ``d1..d{count}`` derived by SQL."""
    folder = root / f"chain{count}" / "chain"
    folder.mkdir(parents=True)
    write_csv(folder / "data.csv")
    lines = ["type: assets.Pipeline", "attributes:", "  name: chain", "  datasets:", "    d0:"]
    lines.append("      source: {path: data.csv}")
    for i in range(1, count + 1):
        lines += [f"    d{i}:", f"      inputs: [d{i - 1}]", f'      sql: "{SQL.format(input=f"d{i - 1}")}"']
    (folder / "defs.yaml").write_text("\n".join(lines) + "\n")
    return folder.parent


def sql_step(csv: Path, calls: int) -> tuple[float, float]:
    """Median seconds per call: Slipway's ``run_query`` and the plain DuckDB sequence, alternating blocks."""
    import duckdb
    import pandas as pd

    from resources.query import DuckdbEngine

    run_query = DuckdbEngine().run

    frame = pd.read_csv(csv)
    query = SQL.format(input="d0")

    def slipway() -> object:
        return run_query(query, {"d0": frame}, "benchmark")

    connection = duckdb.connect()

    def plain() -> object:
        connection.register("d0", frame)
        result = connection.execute(query).df()
        connection.unregister("d0")
        return result

    for fn in (slipway, plain):
        for _ in range(10):
            fn()
    block = 20
    times: dict[str, list[float]] = {"slipway": [], "plain": []}
    for _ in range(max(1, calls // block)):
        for name, fn in (("slipway", slipway), ("plain", plain)):
            for _ in range(block):
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
    return statistics.median(times["slipway"]), statistics.median(times["plain"])


def main() -> None:
    """Run every measurement and print the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="10,50", help="chain lengths, comma-separated (at least two)")
    parser.add_argument("--calls", type=int, default=200, help="calls of each side for the SQL step alone")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if len(sizes) < 2:
        parser.error("--sizes needs at least two chain lengths")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
        plain_script = root / "plain_chain.py"
        plain_script.write_text(PLAIN)
        folders = {n: chain_defs(root, n) for n in sizes}
        slipway: dict[int, list[float]] = {n: [] for n in sizes}
        plain: dict[int, list[float]] = {n: [] for n in sizes}
        imports: list[float] = []
        for i in range(args.repeats):
            for n in sizes:
                run_env = {**env, "SLIPWAY_HOME": str(root / f"home{n}-{i}")}
                slipway[n].append(timed([str(BIN / "slipway"), "--defs", str(folders[n]), "run"], run_env))
                csv = folders[n] / "chain" / "data.csv"
                plain[n].append(timed([sys.executable, str(plain_script), str(csv), str(n), SQL, str(ROWS)], env))
            imports.append(timed([sys.executable, "-c", IMPORTS], env))
            shown = "  ".join(f"{n}: slipway {slipway[n][-1]:.2f}s plain {plain[n][-1]:.2f}s" for n in sizes)
            print(f"repeat {i + 1}: {shown}  imports {imports[-1]:.2f}s", flush=True)

        s = {n: statistics.median(slipway[n]) for n in sizes}
        p = {n: statistics.median(plain[n]) for n in sizes}
        small, big = sizes[0], sizes[-1]
        marginal = ((s[big] - p[big]) - (s[small] - p[small])) / (big - small)
        slipway_call, plain_call = sql_step(folders[small] / "chain" / "data.csv", args.calls)

        print(f"\ngraph chain (SQL derived datasets, {ROWS:,} rows each), median of {args.repeats}:")
        for n in sizes:
            print(
                f"  {n} assets: slipway {s[n]:.2f} s, plain DuckDB {p[n]:.2f} s   "
                f"(simple overhead {(s[n] - p[n]) / n * 1000:.0f} ms per asset)"
            )
        print(f"  plain: python + pandas + duckdb imports {statistics.median(imports):.2f} s of it")
        print(f"  per-asset overhead: {marginal * 1000:.0f} ms (marginal, {small} -> {big})   (target <= 15 ms)")
        print(
            f"  SQL step: slipway {slipway_call * 1000:.2f} ms vs plain DuckDB {plain_call * 1000:.2f} ms "
            f"per query: {slipway_call / plain_call:.2f}x   (target <= 1.1x; median of {args.calls} calls each)"
        )


if __name__ == "__main__":
    main()
