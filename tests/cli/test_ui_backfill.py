"""The Dagster UI's backfill of partitions, under `slipway dev`: its runs write the record `slipway run` reads.

The UI's "Materialize → partitions" launches a backfill that Dagster's daemon runs a partition per
run (Slipway's assets declare no batching); the test sends the request the UI sends, over GraphQL.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from test_dev import REPO, SLIPWAY, _free_port, _graphql, _kill_marked, _start_dev, _stop, _wait_http

from definitions.cli.runner import run

pytestmark = pytest.mark.slow

BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status runIds: runs(limit: 100) { runId } } }
}
"""
DAYS = ["2026-01-03", "2026-01-04", "2026-01-05"]


def test_a_ui_backfill_of_three_days_runs_a_run_each_and_slipway_run_then_reuses_them(home, tmp_path):
    import subprocess

    defs = REPO / "examples" / "partitions" / "defs"
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    built = subprocess.run(
        [SLIPWAY, "run", "--defs", str(defs)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stdout + built.stderr
    before = {r.key: r for r in run(defs_dir=defs).outcomes}
    assert {r.status for r in before.values()} == {"reused"}

    port, marker, log = _free_port(), uuid.uuid4().hex, tmp_path / "dev.log"
    proc = _start_dev(log, {**env, "DEV_TEST_MARKER": marker}, "--defs", str(defs), "--port", str(port),
                      "--mlflow-port", str(_free_port()))  # fmt: skip
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/server_info", 180) == 200
        # Rebuild three days of events after, say, a fix upstream: what the UI sends for that selection.
        params = {"partitionNames": DAYS, "assetSelection": [{"path": ["clicks", "events"]}], "fromFailure": False}
        launched = _graphql(port, BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.monotonic() + 300
        while True:
            backfill = _graphql(port, STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]
            if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
                break
            assert time.monotonic() < deadline, (backfill, log.read_text()[-3000:])
            time.sleep(1)
        assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (backfill, log.read_text()[-3000:])
        assert len(backfill["runIds"]) == 3  # a run per partition
        assert _stop(proc, signal.SIGINT) < 30
    finally:
        _kill_marked(marker)

    import dagster as dg
    from views import stack_instance

    with stack_instance() as instance:
        latest = {
            p: instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["clicks", "events"]), asset_partitions=[p]), limit=1
            ).records[0]
            for p in DAYS
        }
        tags = {p: (instance.get_run_by_id(r.run_id).tags or {}) for p, r in latest.items()}
    assert {p: t.get("dagster/partition") for p, t in tags.items()} == {p: p for p in DAYS}
    assert all("dagster/backfill" in t for t in tags.values()), tags
    # The same data, the same data versions: what reads those days is current, and `slipway run` reuses all.
    after = {r.key: r for r in run(defs_dir=defs).outcomes}
    assert {k: r.status for k, r in after.items()} == dict.fromkeys(after, "reused"), after
