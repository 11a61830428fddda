"""Which table is current is the version Dagster recorded: the artifact store keeps no pointer of its own.

A `slipway run` killed between writing a table and Dagster recording its materialization leaves
a table no record names; whatever reads that dataset next (the UI materializing what is
downstream, say) reads the version the record names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from views import stack_instance, ui_materialize

from definitions.cli.runner import run
from resources.artifacts import LocalArtifactStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
    totals:
      inputs: [orders]
      sql: select count(*) as orders from orders
"""


def _orders(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(rows), "amount": [1.5] * rows})


def _recorded(key: str) -> str:
    with stack_instance() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
    assert event is not None
    return event.run_id


def test_a_table_written_by_a_killed_run_is_not_read_downstream(home, defs_dir, write_pipeline):
    write_pipeline("shop", SHOP, {"data/orders.csv": _orders(3)})
    assert run(defs_dir=defs_dir).ok
    recorded = _recorded("shop/orders")

    # New rows; the next run is killed right after it wrote the new orders table.
    _orders(5).to_csv(defs_dir / "shop" / "data" / "orders.csv", index=False)
    env = {**os.environ, "SLIPWAY_HOME": str(home), "PYTHONPATH": str(REPO)}
    killpoints = REPO / "tests" / "killpoints.py"
    done = subprocess.run(
        [sys.executable, str(killpoints), "table-written", "--defs", str(defs_dir), "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    store = LocalArtifactStore(base_dir=str(home / "artifacts"))
    written = sorted(p.stem for p in (home / "artifacts" / "shop" / "orders").glob("*.parquet"))
    assert len(written) == 2 and _recorded("shop/orders") == recorded  # a table no record names

    # The UI materializes totals alone: it counts the orders the record names (3), not the 5 written.
    assert ui_materialize(defs_dir, "shop/totals").success
    totals = store.read_version(("shop", "totals"), _recorded("shop/totals"))
    assert totals["orders"].tolist() == [3]
