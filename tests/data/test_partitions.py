"""Partitioned datasets: declared in YAML, built, stored and checked partition by partition.

A static and a daily-partitioned source, a derived dataset per partition, and a model that reads
every partition; `slipway run` builds only the partitions that need it (missing, failed, code
changed, their files changed), and a new file builds its partition alone.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

from definitions.cli.runner import run

pytestmark = pytest.mark.slow

PIPELINE = """
type: assets.Pipeline
attributes:
  name: sales
  datasets:
    orders:
      source: {path: "data/{region}.csv"}
      partitions: {static: [eu, us, apac]}
      expectations:
        - {expect: column_values_to_not_be_null, column: amount}
    big_orders:
      inputs: [orders]
      sql: select * from orders where amount > 1
  models:
    spend:
      dataset: big_orders
      target: amount
      features: [qty]
      estimator: sklearn.linear_model.LinearRegression
      metrics: [r2]
"""


def frame(region: str, rows: int = 30, shift: float = 0.0) -> pd.DataFrame:
    qty = [float(i % 7 + 1) for i in range(rows)]
    return pd.DataFrame({"region": region, "qty": qty, "amount": [q * 3.0 + 1.5 + shift for q in qty]})


@pytest.fixture
def sales(write_pipeline):
    files = {f"data/{r}.csv": frame(r) for r in ("eu", "us", "apac")}
    return write_pipeline("sales", PIPELINE, files).parent


def rows(report):
    return {row.key: row for row in report.outcomes}


def test_each_partition_is_built_and_a_changed_file_rebuilds_its_partition_alone(home, defs_dir, sales):
    first = rows(run(defs_dir=defs_dir))
    assert first["sales/orders"].status == "built", first["sales/orders"]
    assert first["sales/orders"].detail == "3 partitions built (eu … apac): never built"  # the definition's order
    assert first["sales/big_orders"].status == "built"
    assert first["sales/spend"].status == "built", first["sales/spend"].detail

    again = rows(run(defs_dir=defs_dir))
    assert {k: r.status for k, r in again.items()} == dict.fromkeys(again, "reused")

    path = sales / "data" / "us.csv"
    frame("us", shift=1.0).to_csv(path, index=False)
    os.utime(path, ns=(1, 1))  # a new modification time whatever the clock's resolution
    third = rows(run(defs_dir=defs_dir))
    assert third["sales/orders"].detail.startswith("1 partition built (us)"), third["sales/orders"]
    assert third["sales/big_orders"].detail.startswith("1 partition built (us)")
    assert third["sales/spend"].status == "built"


def test_a_source_path_naming_a_partition_needs_a_partitions_block(home, defs_dir, write_pipeline):
    from graph_cases import validate_error

    path = write_pipeline(
        "sales", PIPELINE.replace("      partitions: {static: [eu, us, apac]}\n", ""), {"data/eu.csv": frame("eu")}
    )
    assert validate_error(defs_dir) == (
        f"{path}:6: pipeline sales: datasets.orders.source.path: source path 'data/{{region}}.csv' names a partition {{region}} "
        "but the dataset has no `partitions` (add one, or write the path without braces)"
    )


EVENTS = """
type: assets.Pipeline
attributes:
  name: web
  datasets:
    events:
      source: {path: "landing/{date}.csv"}
      partitions: {time: {cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-06}}
      transform: transforms:slow_when_flagged
      expectations:
        - {expect: column_values_to_be_between, column: clicks, min_value: 0}
"""
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"]


def day(date: str) -> pd.DataFrame:
    return pd.DataFrame({"day": [date] * 5, "clicks": list(range(5))})


@pytest.fixture
def web(write_pipeline, monkeypatch):
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    return write_pipeline("web", EVENTS, {f"landing/{d}.csv": day(d) for d in DAYS[:4]}).parent


def test_backfill_builds_what_is_missing_then_only_what_failed_then_what_a_change_made_stale(home, defs_dir, web):
    from definitions.cli.backfill import backfill

    # Day 5 has no file yet: it waits, rather than failing at every run.
    report, said = backfill("web/events", defs_dir=defs_dir, wanted="missing")
    assert said == [
        "web/events: 4 of 5 partitions to build (--only missing): 2026-01-01 … 2026-01-04 (4)",
        "web/events: 1 waits for files: 2026-01-05",
    ]
    assert [(r.status, r.detail) for r in report.outcomes] == [
        ("built", "4 partitions built (2026-01-01 … 2026-01-04): first build")
    ]

    # Its file lands with a negative count: refused by the expectation, the partition is failed.
    day(DAYS[4]).assign(clicks=-1).to_csv(web / "landing" / f"{DAYS[4]}.csv", index=False)
    report, said = backfill("web/events", defs_dir=defs_dir, wanted="missing")
    assert said == ["web/events: 1 of 5 partitions to build (--only missing): 2026-01-05"]
    [row] = report.outcomes
    assert row.status == "failed"
    assert row.detail.startswith("partition 2026-01-05 failed: check failed: expect_0_column_values_to_be_between")
    report, said = backfill("web/events", defs_dir=defs_dir, wanted="missing")
    assert said == [  # failed is not missing; refused with nothing new since, it is held
        "web/events: 0 of 5 partitions to build (--only missing)",
        "web/events: 1 refused, held until its files, an input or the definition change (--only failed tries it): "
        "2026-01-05",
    ]

    day(DAYS[4]).to_csv(web / "landing" / f"{DAYS[4]}.csv", index=False)
    report, said = backfill("web/events", defs_dir=defs_dir, wanted="failed")
    assert said == ["web/events: 1 of 5 partitions to build (--only failed): 2026-01-05"]
    assert report.outcomes[0].detail == "1 partition built (2026-01-05): its latest attempt failed"

    # A definition change makes every partition stale; --from/--to take two of them.
    (web / "defs.yaml").write_text(EVENTS + "      description: events by day\n")
    report, said = backfill("web/events", defs_dir=defs_dir, start="2026-01-02", end="2026-01-03")
    assert said == ["web/events: 2 of 2 partitions to build (--only stale): 2026-01-02 … 2026-01-03 (2)"]
    report, said = backfill("web/events", defs_dir=defs_dir, wanted="missing")
    assert said == ["web/events: 0 of 5 partitions to build (--only missing)"]


def test_a_partition_key_outside_the_definition_is_refused_with_the_nearest(home, defs_dir, web):
    from definitions.cli.backfill import backfill
    from resources.errors import DefinitionError

    with pytest.raises(DefinitionError) as raised:
        backfill("web/events", defs_dir=defs_dir, partitions=["2026-01-07"])
    assert str(raised.value) == (
        "partition '2026-01-07' is not one of the 5 partitions; they run from '2026-01-01' to '2026-01-05', "
        "the nearest is '2026-01-05'"
    )
    with pytest.raises(DefinitionError) as raised:
        backfill("web/events", defs_dir=defs_dir, start="2027-03-01")
    assert str(raised.value) == (
        "partition '2027-03-01' is not one of the 5 partitions; they run from '2026-01-01' to '2026-01-05', "
        "the nearest is '2026-01-05'"
    )
    with pytest.raises(DefinitionError) as raised:
        backfill("web/event", defs_dir=defs_dir)
    assert str(raised.value) == "no dataset 'web/event'; did you mean 'web/events'?"


def _backfill_asleep_in_day_3(defs_dir, web, tmp_path, stdout):
    """`slipway backfill web/events` in a process of its own, once it is in day 3's transform (asleep).

    Day 5's file lands first; the child, and the lines it printed, are returned.
    """
    import subprocess
    import sys

    from conftest import REPO

    day(DAYS[4]).to_csv(web / "landing" / f"{DAYS[4]}.csv", index=False)
    flag = tmp_path / "slow-day"
    flag.write_text("2026-01-03")  # its partition sleeps there
    env = {**os.environ, "SLOW_DAY_FLAG": str(flag), "PYTHONPATH": str(REPO / "tests")}
    command = [sys.executable, "-m", "definitions.cli.main", "backfill", "web/events", "--defs", str(defs_dir)]
    child = subprocess.Popen(
        command, env=env, cwd=REPO, stderr=subprocess.PIPE, stdout=stdout, text=True, start_new_session=True
    )
    seen = []
    assert child.stderr is not None
    for line in child.stderr:
        seen.append(line)
        if "web/events[2026-01-03]: loading" in line:  # in its transform, asleep
            return child, seen
    child.wait()
    pytest.fail(f"the backfill ended before its third partition: {''.join(seen)[-2000:]}")


def test_a_backfill_killed_part_way_resumes_without_redoing_finished_partitions(home, defs_dir, web, tmp_path):
    import signal
    import subprocess

    from definitions.cli.backfill import backfill

    child, _ = _backfill_asleep_in_day_3(defs_dir, web, tmp_path, subprocess.DEVNULL)
    os.killpg(child.pid, signal.SIGKILL)  # killed there
    child.wait()

    (tmp_path / "slow-day").unlink()  # no longer slow
    report, said = backfill("web/events", defs_dir=defs_dir)
    assert said == ["web/events: 3 of 5 partitions to build (--only stale): 2026-01-03 … 2026-01-05 (3)"]
    assert (
        report.outcomes[0].detail
        == "3 partitions built (2026-01-03 … 2026-01-05): first build; its latest attempt failed"
    )


def test_a_second_backfill_is_refused_while_one_runs_and_ctrl_c_stops_after_the_current_partition(
    home, defs_dir, web, tmp_path
):
    import signal
    import subprocess

    from definitions.cli.backfill import backfill
    from resources.errors import SlipwayError

    child, seen = _backfill_asleep_in_day_3(defs_dir, web, tmp_path, subprocess.PIPE)
    try:
        with pytest.raises(SlipwayError) as refused:
            backfill("web/events", defs_dir=defs_dir)
        assert "another `slipway run` or `slipway backfill` is using" in str(refused.value)
        os.killpg(child.pid, signal.SIGINT)  # Ctrl-C: to the terminal's process group
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode != 0, out
    assert "2026-01-04" not in "".join(seen) + err  # stopped: the partitions after it were not started
    (tmp_path / "slow-day").unlink()  # no longer slow
    report, said = backfill("web/events", defs_dir=defs_dir)
    assert said == ["web/events: 3 of 5 partitions to build (--only stale): 2026-01-03 … 2026-01-05 (3)"]
    assert report.ok, report.outcomes


LANDING = """
type: assets.Pipeline
attributes:
  name: batches
  datasets:
    readings:
      source: {path: "landing/{batch}.csv"}
      partitions: {discover: files}
      expectations:
        - {expect: column_values_to_be_between, column: value, min_value: 0}
    scaled:
      inputs: [readings]
      sql: select batch, value * 2 as value from readings
"""


def batch(name: str, value: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"batch": [name] * 4, "value": [value] * 4})


def test_a_new_file_in_a_discovered_landing_folder_builds_its_partition_alone(home, defs_dir, write_pipeline, caplog):
    folder = write_pipeline("batches", LANDING, {"landing/b1.csv": batch("b1"), "landing/b2.csv": batch("b2")}).parent
    (folder / "landing" / "notes.txt").write_text("not a batch")
    first = rows(run(defs_dir=defs_dir))
    assert first["batches/readings"].detail.startswith("2 partitions built (b1 … b2)"), first["batches/readings"]
    assert first["batches/scaled"].detail.startswith("2 partitions built (b1 … b2)")
    assert "landing/notes.txt does not fit the source path 'landing/{batch}.csv'; skipped" in caplog.text

    batch("b3").to_csv(folder / "landing" / "b3.csv", index=False)
    second = rows(run(defs_dir=defs_dir))
    assert second["batches/readings"].detail.startswith("1 partition built (b3)"), second["batches/readings"]
    assert second["batches/scaled"].detail.startswith("1 partition built (b3)")


def test_a_partition_refused_by_its_expectation_blocks_only_that_partition_downstream(home, defs_dir, write_pipeline):
    files = {"landing/b1.csv": batch("b1"), "landing/b2.csv": batch("b2", value=-5.0)}
    write_pipeline("batches", LANDING, files)
    first = rows(run(defs_dir=defs_dir))
    readings, scaled = first["batches/readings"], first["batches/scaled"]
    assert readings.status == "failed"
    assert readings.detail == (
        "1 partition built (b1): never built; partition b2 failed: check failed: expect_0_column_values_to_be_between; "
        "not stored"
    )
    # What reads it is built for the good partition and blocked, saying which, for the refused one.
    assert (scaled.status, scaled.detail) == (
        "blocked",
        "1 partition built (b1): never built; partition b2 blocked: batches/readings failed",
    )


def test_a_refused_partition_is_held_until_its_file_or_definition_changes(home, defs_dir, write_pipeline):
    """The same file fails the same checks: not tried again at each run (nor by the sensor) until it changes."""
    from views import automation_partitions

    from definitions.cli.backfill import backfill

    files = {"landing/b1.csv": batch("b1"), "landing/b2.csv": batch("b2", value=-5.0)}
    folder = write_pipeline("batches", LANDING, files).parent
    assert not run(defs_dir=defs_dir).ok
    second = run(defs_dir=defs_dir)
    assert not second.ok and second.dagster_run_ids == []  # nothing launched: b2 is held
    readings = rows(second)["batches/readings"]
    assert readings.status == "failed", readings
    assert readings.detail.startswith("partition b2 refused in run "), readings.detail
    assert "blocking expectations failed: expect_0_column_values_to_be_between;" in readings.detail
    assert readings.detail.endswith(
        "not tried again until its files, an input or its definition change "
        "(--force or `slipway backfill --only failed` tries it)"
    ), readings.detail
    assert automation_partitions(defs_dir) == {}
    _, said = backfill("batches/readings", defs_dir=defs_dir)
    assert said == [
        "batches/readings: 0 of 2 partitions to build (--only stale)",
        "batches/readings: 1 refused, held until its files, an input or the definition change (--only failed "
        "tries it): b2",
    ]
    # Asked for by name, it is tried (and refused) again, and held from that attempt on.
    again, said = backfill("batches/readings", defs_dir=defs_dir, wanted="failed")
    assert said == ["batches/readings: 1 of 2 partitions to build (--only failed): b2"]
    assert len(again.dagster_run_ids) == 1 and again.outcomes[0].detail.startswith("partition b2 failed: check failed")
    third = rows(run(defs_dir=defs_dir))["batches/readings"]
    assert third.detail.startswith(f"partition b2 refused in run {again.dagster_run_ids[0][:8]}: "), third.detail
    # A fixed file is new data: built, and what derives from it.
    path = folder / "landing" / "b2.csv"
    batch("b2", value=5.0).to_csv(path, index=False)
    os.utime(path, ns=(4, 4))
    fixed = run(defs_dir=defs_dir)
    assert fixed.ok, [(o.key, o.status, o.detail) for o in fixed.outcomes]
    assert rows(fixed)["batches/scaled"].detail.startswith("1 partition built (b2)")


def test_a_refused_day_whose_file_is_deleted_waits_for_its_file_instead_of_staying_held(home, defs_dir, write_pipeline):
    text = ROLLING.split("    rolling:")[0].replace(
        "end: 2026-01-06}}\n",
        "end: 2026-01-06}}\n      expectations:\n        - {expect: column_values_to_be_between, column: clicks, min_value: 0}\n",
    )
    files = {f"landing/{d}.csv": day(d) for d in DAYS}
    files["landing/2026-01-03.csv"] = day("2026-01-03").assign(clicks=-1)
    folder = write_pipeline("web", text, files).parent
    assert not run(defs_dir=defs_dir).ok
    assert "partition 2026-01-03 refused in run" in rows(run(defs_dir=defs_dir))["web/events"].detail  # held
    (folder / "landing" / "2026-01-03.csv").unlink()  # to be delivered again
    waiting = run(defs_dir=defs_dir)
    assert waiting.ok and waiting.dagster_run_ids == [], [(o.key, o.status, o.detail) for o in waiting.outcomes]
    day("2026-01-03").to_csv(folder / "landing" / "2026-01-03.csv", index=False)
    delivered = rows(run(defs_dir=defs_dir))
    assert delivered["web/events"].detail.startswith("1 partition built (2026-01-03)"), delivered["web/events"]


def _plan_repo(tmp_path):
    from gitrepo import init

    root = tmp_path / "repo"
    (root / "defs" / "web" / "landing").mkdir(parents=True)
    (root / "stacks").mkdir()
    (root / "stacks" / "local.yaml").write_text("orchestrator: {type: in_process}\nalerter: {type: log}\n")
    (root / "uv.lock").write_text("version = 1\n")
    text = EVENTS.replace("start: 2026-01-01, end: 2026-01-06", "start: 2025-01-01, end: 2026-01-01").replace(
        "      transform: transforms:slow_when_flagged\n", ""
    )
    text += "    per_day:\n      inputs: [events]\n      sql: select day, count(*) as n from events group by day\n"
    (root / "defs" / "web" / "defs.yaml").write_text(text)
    for date in DAYS:  # 2025's days: in the range
        day(date.replace("2026", "2025")).to_csv(
            root / "defs" / "web" / "landing" / f"{date.replace('2026', '2025')}.csv", index=False
        )
    init(root)
    return root


def _plan_why(root):
    from definitions.plan.compare import plan

    found = plan(None, root / "defs", root / "stacks", root / "uv.lock")
    return {c.key: (c.status, c.why) for c in found.assets}


def test_plan_says_how_many_partitions_a_change_builds(tmp_path):
    root = _plan_repo(tmp_path)
    defs = root / "defs" / "web" / "defs.yaml"
    text = defs.read_text()

    # A definition change: every partition of it and of what derives from it.
    defs.write_text(text.replace("partitions: {time:", "description: clicks\n      partitions: {time:"))
    assert _plan_why(root) == {
        "web/events": ("changed", ["its definition changed", "all 365 partitions rebuild"]),
        "web/per_day": (
            "stale",
            ["if web/events data changes", "the partitions of its 365 whose inputs change rebuild"],
        ),
    }
    # One file changed: its partition.
    defs.write_text(text)
    day("2025-01-02").assign(clicks=9).to_csv(root / "defs" / "web" / "landing" / "2025-01-02.csv", index=False)
    assert _plan_why(root)["web/events"] == (
        "changed",
        ["its source files changed: landing/2025-01-02.csv (modified)", "1 of 365 partitions rebuild"],
    )
    # A range that grows builds the new windows only; a new partitioning says what becomes of the old.
    day("2025-01-02").to_csv(root / "defs" / "web" / "landing" / "2025-01-02.csv", index=False)
    defs.write_text(text.replace("end: 2026-01-01", "end: 2026-01-31"))
    grew = ("changed", ["its partitions went from 365 to 395: the 30 new ones build, the others stay as they are"])
    assert _plan_why(root) == {"web/events": grew, "web/per_day": grew}
    defs.write_text(
        text.replace('{time: {cron: "0 0 * * *", start: 2025-01-01, end: 2026-01-01}}', "{discover: files}")
    )
    assert _plan_why(root)["web/events"] == (
        "changed",
        [
            "its definition changed",
            "its partitioning changed: what was 365 partitions (time (0 0 * * *) from 2025-01-01) stays in the "
            "record, unread; 5 partitions build (one per file)",
        ],
    )


def test_the_sensor_the_ui_and_slipway_run_agree_per_partition(home, defs_dir, sales):
    from views import automation_partitions, stack_instance, ui_observe

    from definitions.definitions import build_definitions

    rows(run(defs_dir=defs_dir))
    assert automation_partitions(defs_dir) == {}
    path = sales / "data" / "us.csv"
    frame("us", shift=2.0).to_csv(path, index=False)
    os.utime(path, ns=(2, 2))
    ui_observe(defs_dir)  # "Observe sources" in the UI: the source's observation, partition by partition
    assert automation_partitions(defs_dir) == {"sales/orders": {"us"}}

    # The UI materializes that partition (and what derives from it): nothing else is out of date.
    defs = build_definitions(defs_dir)
    job = defs.resolve_implicit_global_asset_job_def()
    with stack_instance() as instance:
        done = job.execute_in_process(
            instance=instance,
            asset_selection=[dg_key("sales/orders"), dg_key("sales/big_orders")],
            partition_key="us",
            raise_on_error=False,
        )
    assert done.success
    # New data alone retrains a model by its retrain policy, not by the sensor's rule; `slipway run` (a
    # person asking) trains it: as for unpartitioned data.
    assert automation_partitions(defs_dir) == {}
    after = rows(run(defs_dir=defs_dir))
    assert [after[k].status for k in ("sales/orders", "sales/big_orders", "sales/spend")] == [
        "reused",
        "reused",
        "built",
    ]


def dg_key(text: str):
    import dagster as dg

    return dg.AssetKey.from_user_string(text)


def test_the_partitioned_example_builds_every_day_then_reuses_them(home):
    from conftest import REPO

    defs = REPO / "examples" / "partitions" / "defs"
    first = rows(run(defs_dir=defs))
    assert {k: r.status for k, r in first.items()} == {
        "clicks/events": "built",
        "clicks/sessions": "built",
        "clicks/weekly": "built",
        "clicks/conversion": "built",
    }
    assert first["clicks/events"].detail == "14 partitions built (2026-01-01 … 2026-01-14): never built"
    assert first["clicks/weekly"].detail == "14 partitions built (2026-01-01 … 2026-01-14): never built"
    again = rows(run(defs_dir=defs))
    assert {r.status for r in again.values()} == {"reused"}


WINDOWED = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: "days/{date}.csv"}
      partitions: {time: {cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-06}}
  models:
    spend:
      dataset: orders
      window: 3
      target: amount
      features: [qty]
      estimator: sklearn.linear_model.LinearRegression
      metrics: [r2]
"""


def test_a_model_on_a_window_trains_on_the_last_partitions_records_them_and_repro_reads_them_back(
    home, defs_dir, write_pipeline
):
    from gitrepo import init
    from mlflow import MlflowClient

    from definitions.cli.repro import repro

    files = {f"days/{d}.csv": frame(d, rows=10, shift=float(i)) for i, d in enumerate(DAYS)}
    write_pipeline("shop", WINDOWED, files)
    init(defs_dir)
    first = rows(run(defs_dir=defs_dir))
    assert first["shop/spend"].status == "built", first["shop/spend"].detail

    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    run_id = client.get_model_version("shop.spend", "1").run_id
    assert client.get_run(run_id).data.tags["slipway.partitions.shop/orders"] == "3 (2026-01-03 … 2026-01-05)"
    import json

    read = json.loads(open(client.download_artifacts(run_id, "partitions.json")).read())
    assert read["dataset"] == "shop/orders" and [p["partition"] for p in read["partitions"]] == DAYS[2:]

    said: list[str] = []
    found = repro("shop.spend@1", None, defs_dir, say=said.append)
    assert found.ok and found.mismatches == [], found.lines
    assert [line.split(" version ")[1] for line in said if line.startswith("data: shop/orders")] == [
        f"{client.get_run(run_id).data.tags['slipway.upstream.shop/orders']} (3 partitions, 30 rows)"
    ]


def test_a_window_on_a_dataset_that_is_not_partitioned_is_refused(home, defs_dir, write_pipeline):
    from graph_cases import validate_error

    text = WINDOWED.replace('"days/{date}.csv"', "days/all.csv").replace(
        '      partitions: {time: {cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-06}}\n', ""
    )
    path = write_pipeline("shop", text, {"days/all.csv": frame("eu")})
    assert validate_error(defs_dir) == (
        f"{path}:10: pipeline shop: models.spend.window: `window` takes the last partitions of a partitioned "
        "dataset; 'orders' is not one"
    )


def test_the_new_files_sensor_observes_a_new_batch_as_its_partition_and_the_rule_requests_it_alone(
    home, defs_dir, write_pipeline
):
    import dagster as dg
    from views import automation_partitions, stack_instance

    from assets.automation.sensors import NEW_FILES_SENSOR
    from definitions.definitions import build_definitions

    folder = write_pipeline("batches", LANDING, {"landing/b1.csv": batch("b1"), "landing/b2.csv": batch("b2")}).parent
    assert run(defs_dir=defs_dir).ok

    def tick():  # noqa: ANN202
        defs = build_definitions(defs_dir)
        with stack_instance() as instance:
            context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
            return defs.get_sensor_def(NEW_FILES_SENSOR).evaluate_tick(context)

    assert tick().skip_message == "1 file source: no new or changed files"
    batch("b3").to_csv(folder / "landing" / "b3.csv", index=False)
    (folder / "landing" / "b4 copy.csv").write_text("batch,value\nb4,1\n")  # a key cannot hold a space
    result = tick()
    assert result.run_requests == []
    assert result.skip_message == (
        "1 file source: new or changed files in batches/readings/landing_batch_csv (1 partition: b3)"
    )
    # That partition alone, and the same partition of what derives from it, in the same evaluation.
    assert automation_partitions(defs_dir) == {"batches/readings": {"b3"}, "batches/scaled": {"b3"}}
    assert tick().skip_message == "1 file source: no new or changed files"


def test_a_new_partition_is_new_data_for_a_models_retrain_policy(home, defs_dir, write_pipeline):
    import dagster as dg
    from views import retrain_tick, stack_instance

    from assets.spec.tags import TRIGGER_TAG
    from definitions.definitions import build_definitions

    text = LANDING + (
        "  models:\n    level:\n      dataset: readings\n      target: value\n      features: [doubled]\n"
        "      estimator: sklearn.linear_model.LinearRegression\n      metrics: [r2]\n"
        "      retrain: {on_new_data: true}\n"
    )
    text = text.replace("sql: select batch, value * 2 as value from readings", "sql: select * from readings")

    def rows_of(name: str, i: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "batch": name,
                "value": [float(i * 100 + k) for k in range(10)],
                "doubled": [2.0 * (i * 100 + k) for k in range(10)],
            }
        )

    files = {f"landing/b{i}.csv": rows_of(f"b{i}", i) for i in (1, 2)}
    folder = write_pipeline("batches", text, files).parent
    assert run(defs_dir=defs_dir).ok
    assert "batches/level: idle: trained on the newest data" in (retrain_tick(defs_dir).skip_message or "")

    rows_of("b3", 3).to_csv(folder / "landing" / "b3.csv", index=False)
    defs = build_definitions(defs_dir)
    with stack_instance() as instance:  # what the sensors do: observe it, then build that partition
        from assets.spec.loader import load_pipelines
        from definitions.cli.execute import Engine
        from definitions.cli.runner import observe
        from stacks import load_stack

        engine = Engine(load_stack(), defs_dir)
        engine.observe(observe(load_pipelines(defs_dir)))
        engine.close()
        done = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey(["batches", "readings"])], partition_key="b3"
        )
    assert done.success
    (request,) = retrain_tick(defs_dir).run_requests
    assert request.asset_selection == [dg.AssetKey(["batches", "level"])]
    assert request.tags[TRIGGER_TAG] == "new_data"


def test_a_day_that_has_not_landed_waits_with_what_derives_from_it_and_fails_no_run(home, defs_dir, write_pipeline):
    text = EVENTS.replace("      transform: transforms:slow_when_flagged\n", "")
    text += "    per_day:\n      inputs: [events]\n      sql: select day, count(*) as n from events group by day\n"
    write_pipeline("web", text, {f"landing/{d}.csv": day(d) for d in DAYS[:3]})
    first = run(defs_dir=defs_dir)
    assert first.ok, [(o.key, o.status, o.detail) for o in first.outcomes]
    assert rows(first)["web/per_day"].detail == "3 partitions built (2026-01-01 … 2026-01-03): never built"
    again = run(defs_dir=defs_dir)
    assert again.ok and {o.status for o in again.outcomes} == {"reused"}, [(o.key, o.detail) for o in again.outcomes]


def test_force_with_no_partition_yet_says_so_and_ends(home, defs_dir, write_pipeline):
    folder = write_pipeline("batches", LANDING).parent
    (folder / "landing").mkdir()
    report = rows(run(defs_dir=defs_dir, force=True))
    assert (report["batches/readings"].status, report["batches/readings"].detail) == (
        "not run",
        "no partition to build (none found yet)",
    )


def test_discovered_files_with_a_wildcard_too_are_refused(home, defs_dir, write_pipeline):
    from graph_cases import validate_error

    path = write_pipeline("batches", LANDING.replace('"landing/{batch}.csv"', '"landing/{batch}/*.csv"'))
    assert validate_error(defs_dir) == (
        f"{path}:6: pipeline batches: datasets.readings.source.path: with `discover: files` each file is a "
        "partition, named by the placeholder: 'landing/{batch}/*.csv' has a wildcard too (write the path of one "
        "file, e.g. landing/{batch}.csv)"
    )


ROLLING = """
type: assets.Pipeline
attributes:
  name: web
  datasets:
    events:
      source: {path: "landing/{date}.csv"}
      partitions: {time: {cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-06}}
    rolling:
      inputs: {events: {window: 3}}
      sql: select count(*) as n, count(distinct day) as days, sum(clicks) as clicks from events
"""


def test_a_rolling_window_reads_the_partitions_up_to_its_own_and_a_changed_day_rebuilds_the_windows_over_it(
    home, defs_dir, write_pipeline
):
    from views import automation_partitions, ui_observe

    from definitions.cli.backfill import backfill

    folder = write_pipeline("web", ROLLING, {f"landing/{d}.csv": day(d) for d in DAYS}).parent
    first = rows(run(defs_dir=defs_dir))
    assert first["web/rolling"].detail == "5 partitions built (2026-01-01 … 2026-01-05): never built", first
    tables = stored_partitions(home, "web/rolling")
    # The first days read what there is before them: 1, 2, then 3 days each.
    assert {p: t["days"].item() for p, t in tables.items()} == dict(zip(DAYS, [1, 2, 3, 3, 3], strict=True))
    assert tables["2026-01-04"]["n"].item() == 15
    # Each partition says which partitions its window read (in the UI, on its materialization).
    read = window_metadata(dg_key("web/rolling"), ["2026-01-01", "2026-01-04"])
    assert read == {"2026-01-01": "2026-01-01 (1 partition)", "2026-01-04": "2026-01-02 … 2026-01-04 (3 partitions)"}

    again = rows(run(defs_dir=defs_dir))  # what each window read is recorded as Dagster records it
    assert {k: r.status for k, r in again.items()} == dict.fromkeys(again, "reused"), again
    assert automation_partitions(defs_dir) == {}

    path = folder / "landing" / "2026-01-02.csv"
    day("2026-01-02").assign(clicks=9).to_csv(path, index=False)
    os.utime(path, ns=(3, 3))
    _, said = backfill("web/rolling", defs_dir=defs_dir, wanted="stale", say=lambda line: None)
    assert said == ["web/rolling: 0 of 5 partitions to build (--only stale)"]  # its input's new day is not built yet
    ui_observe(defs_dir)
    assert automation_partitions(defs_dir) == {"web/events": {"2026-01-02"}}
    third = rows(run(defs_dir=defs_dir))
    assert third["web/events"].detail.startswith("1 partition built (2026-01-02)"), third["web/events"]
    # The windows that read day 2: its own, and the two after it.
    assert third["web/rolling"].detail.startswith("3 partitions built (2026-01-02 … 2026-01-04)"), third
    assert stored_partitions(home, "web/rolling")["2026-01-03"]["clicks"].item() == 10 + 45 + 10
    assert automation_partitions(defs_dir) == {}


def test_a_window_over_a_day_that_has_not_landed_waits_and_says_which(home, defs_dir, write_pipeline):
    write_pipeline("web", ROLLING, {f"landing/{d}.csv": day(d) for d in DAYS if d != "2026-01-03"})
    report = run(defs_dir=defs_dir)
    assert report.ok, [(o.key, o.status, o.detail) for o in report.outcomes]
    # Day 3 and the windows that read it wait (no failed run); days 1 and 2 are built.
    assert rows(report)["web/rolling"].detail.startswith("2 partitions built (2026-01-01 … 2026-01-02)")
    from definitions.cli.backfill import backfill

    _, said = backfill("web/rolling", defs_dir=defs_dir, say=lambda line: None)
    assert said == [
        "web/rolling: 0 of 5 partitions to build (--only stale)",
        "web/rolling: 3 wait for files: 2026-01-03 … 2026-01-05 (3)",
    ]


def window_metadata(key, partitions: list[str]) -> dict[str, str]:
    """The ``window/events`` metadata of each of ``partitions`` of ``key``'s latest materialization."""
    import dagster as dg
    from views import stack_instance

    found = {}
    with stack_instance() as instance:
        for partition in partitions:
            wanted = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition])
            (record,) = instance.fetch_materializations(wanted, limit=1).records
            found[partition] = record.asset_materialization.metadata["window/events"].value
    return found


def stored_partitions(home, key: str) -> dict[str, pd.DataFrame]:
    """Each partition of ``key`` as the record holds it (the run that stored it), read from the local store."""
    import dagster as dg
    from views import stack_instance

    from resources.partitioned import partition_path
    from stacks import load_stack
    from stacks.build import build_resources

    asset = dg.AssetKey.from_user_string(key)
    found = {}
    with stack_instance() as instance:
        store = build_resources(load_stack().stack)["io_manager"]
        for partition in DAYS:
            stored = store.recorded(instance, asset, partition)
            if stored is not None:
                found[partition] = store.read_version(partition_path(asset, partition), stored[0])
    return found


def test_validate_says_what_a_change_of_partitioning_leaves_in_the_record(home, defs_dir, write_pipeline):
    """Daily, then one per file, then whole, then daily again: validate says what each change leaves, unread."""
    from definitions.cli.validate import validate

    def notes() -> list[str]:
        return [line for line in validate(defs_dir=defs_dir) if ": ok" not in line]

    daily = ROLLING.split("    rolling:")[0]
    per_file = daily.replace('{time: {cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-06}}', "{discover: files}")
    whole = daily.replace('      partitions: {time: {cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-06}}\n', "")
    whole = whole.replace("{date}", "*")
    path = write_pipeline("web", daily, {f"landing/{d}.csv": day(d) for d in DAYS[:3]})
    assert notes() == []  # nothing has run: no history
    assert run(defs_dir=defs_dir).ok
    assert notes() == []

    path.write_text(per_file)
    (path.parent / "landing" / "2026-01-01.csv").rename(path.parent / "landing" / "first.csv")
    assert notes() == [
        f"{path}:8: pipeline web: dataset events: 1 partition built before is not one of its partitions now "
        "(2026-01-01): it stays in the record, unread; 1 of 3 partitions build at the next run"
    ]
    assert run(defs_dir=defs_dir).ok
    assert notes() == []  # the change was built

    path.write_text(whole)
    assert notes() == [
        f"{path}:7: pipeline web: dataset events: no longer partitioned: its 4 partitions built stay in the "
        "record, unread; it builds whole at the next run"
    ]
    assert run(defs_dir=defs_dir).ok
    assert notes() == []


def test_validate_says_a_dataset_now_partitioned_leaves_its_whole_table(home, defs_dir, write_pipeline):
    from definitions.cli.validate import validate

    daily = ROLLING.split("    rolling:")[0]
    whole = daily.replace('      partitions: {time: {cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-06}}\n', "")
    path = write_pipeline("web", whole.replace("{date}", "*"), {f"landing/{d}.csv": day(d) for d in DAYS})
    report = run(defs_dir=defs_dir)
    assert report.ok
    path.write_text(daily)
    notes = [line for line in validate(defs_dir=defs_dir) if ": ok" not in line]
    assert notes == [
        f"{path}:8: pipeline web: dataset events: now partitioned: the table built whole (run "
        f"{report.dagster_run_ids[0][:8]}) stays in the record, unread; 5 partitions build at the next run"
    ]


def test_nothing_changed_in_a_partitioned_pipeline_is_answered_from_the_no_op_cache(home, defs_dir, write_pipeline):
    import subprocess
    import sys

    from assets.data.partitioning import observe_partitions
    from assets.spec.loader import load_pipelines

    folder = write_pipeline("web", ROLLING, {f"landing/{d}.csv": day(d) for d in DAYS[:4]}).parent
    assert run(defs_dir=defs_dir).ok
    cache = home / "state" / "noop-local.json"
    assert cache.exists()
    code = (
        "import sys; from pathlib import Path; from definitions.cli.runner import run; "
        f"report = run(defs_dir=Path({str(defs_dir)!r})); "
        "print([o.status for o in report.outcomes], 'definitions.cli.execute' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['reused', 'reused'] False"  # answered without opening the record (no engine)
    # A new day's file: not answered from the cache; that day is built.
    day(DAYS[4]).to_csv(folder / "landing" / f"{DAYS[4]}.csv", index=False)
    report = rows(run(defs_dir=defs_dir))
    assert report["web/events"].detail.startswith("1 partition built (2026-01-05)"), report["web/events"]
    # Which partitions exist is part of what the cache rests on, files or not (a new time window
    # opens with the clock, and what waits for it changes what a run says).
    import datetime as dt

    (spec,) = load_pipelines(defs_dir)
    events = spec.spec.datasets["events"]
    assert events.partitions is not None and events.partitions.time is not None
    time = events.partitions.time.model_copy(update={"end": dt.date(2026, 1, 8)})
    longer = events.model_copy(update={"partitions": events.partitions.model_copy(update={"time": time})})
    versions = [observe_partitions("web", "events", d, folder, "here", ())[0] for d in (events, longer)]
    assert versions[0] != versions[1]


def test_a_model_held_by_a_partition_not_landed_names_the_partition(home, defs_dir, write_pipeline):
    text = EVENTS.replace("      transform: transforms:slow_when_flagged\n", "") + (
        "  models:\n    clicks:\n      dataset: events\n      target: clicks\n      features: [clicks]\n"
        "      estimator: sklearn.linear_model.LinearRegression\n      metrics: [r2]\n"
    )
    write_pipeline("web", text, {f"landing/{d}.csv": day(d) for d in DAYS[:4]})
    report = run(defs_dir=defs_dir)
    model = rows(report)["web/clicks"]
    assert (model.status, model.detail) == (
        "blocked",
        "web/events is missing 1 of 5 partitions: 2026-01-05 (its files have not landed)",
    )
