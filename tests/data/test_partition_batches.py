"""Several partitions per run (``max_partitions_per_run``): each partition recorded as its own run would record it.

The same pipeline built a run per partition and in runs of several gives each partition the same
data version, code version, inputs read, window and check results; the rule, the automation
sensor and `slipway run` then agree that nothing is left. A partition that fails in a run of
several fails alone, blocks what reads it (saying which partition), and a run killed part way
resumes without redoing the partitions it finished.
"""

from __future__ import annotations

import os

import dagster as dg
import pandas as pd
import pytest

from definitions.cli.runner import run

pytestmark = pytest.mark.slow

DAYS = [f"2026-01-0{i}" for i in range(1, 8)]
PIPELINE = """
type: assets.Pipeline
attributes:
  name: web
  datasets:
    events:
      source: {{path: "landing/{{date}}.csv"}}
      partitions: {{time: {{cron: "0 0 * * *", start: 2026-01-01, end: 2026-01-08}}, max_partitions_per_run: {per_run}}}
      expectations:
        - {{expect: column_values_to_be_between, column: clicks, min_value: 0}}
    busy:
      inputs: [events]
      sql: select day, clicks * 2 as clicks from events where clicks > 1
      expectations:
        - {{expect: column_values_to_not_be_null, column: clicks, severity: warn}}
    rolling:
      inputs: {{events: {{window: 3}}}}
      sql: select count(*) as n, count(distinct day) as days, sum(clicks) as clicks from events
"""


def day(date: str, clicks: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"day": [date] * 5, "clicks": [clicks + i for i in range(5)]})


def write(write_pipeline, per_run: int, days=DAYS):
    return write_pipeline("web", PIPELINE.format(per_run=per_run), {f"landing/{d}.csv": day(d) for d in days}).parent


def rows(report):
    return {row.key: row for row in report.outcomes}


KEYS = ["web/events", "web/busy", "web/rolling"]
#: What a partition's record says that must not depend on how many partitions its run built.
SAME = ("dagster/data_version", "dagster/code_version", "dagster/data_version_is_user_provided")


def recorded() -> dict[str, dict[str, dict[str, object]]]:
    """Per asset and partition: the tags and metadata of its latest materialization, and its checks' results."""
    from views import stack_instance

    found: dict[str, dict[str, dict[str, object]]] = {}
    with stack_instance() as instance:
        for name in KEYS:
            key = dg.AssetKey.from_user_string(name)
            found[name] = {}
            for partition in DAYS:
                wanted = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition])
                records = instance.fetch_materializations(wanted, limit=1).records
                if not records:
                    continue
                event = records[0].asset_materialization
                tags = event.tags or {}
                found[name][partition] = {
                    "run": records[0].run_id,
                    **{t: tags.get(t) for t in SAME},
                    **{t: v for t, v in tags.items() if t.startswith("dagster/input_data_version/")},
                    **{m: getattr(v, "value", v) for m, v in event.metadata.items() if m != "slipway/stored"},
                }
                # Each check's latest result on the partition, and whether it is about its latest materialization.
                check = _check(name)
                infos = (
                    instance.event_log_storage.get_asset_check_partition_info(
                        [dg.AssetCheckKey(key, check)], partition_keys=[partition]
                    )
                    if check
                    else []
                )
                found[name][partition]["checks"] = [(i.latest_execution_status.value, i.is_current) for i in infos]
    return found


def _check(name: str) -> str | None:
    return {
        "web/events": "expect_0_column_values_to_be_between",
        "web/busy": "expect_0_column_values_to_not_be_null",
    }.get(name)


def test_partitions_built_several_per_run_are_recorded_as_a_run_each_records_them(
    home, defs_dir, write_pipeline, tmp_path, monkeypatch
):
    from views import automation_partitions

    write(write_pipeline, per_run=1)
    one = run(defs_dir=defs_dir)
    assert one.ok, [(o.key, o.status, o.detail) for o in one.outcomes]
    each = recorded()

    monkeypatch.setenv("SLIPWAY_HOME", str(tmp_path / "other-home"))  # the same files, built anew
    (defs_dir / "web" / "defs.yaml").write_text(PIPELINE.format(per_run=3).lstrip())
    several = run(defs_dir=defs_dir)
    assert several.ok, [(o.key, o.status, o.detail) for o in several.outcomes]
    assert rows(several)["web/events"].detail == "7 partitions built (2026-01-01 … 2026-01-07): never built"
    batched = recorded()
    # 3 + 3 + 1 partitions of each of the 3 datasets: 9 runs (a run per partition took 7, each building all 3).
    assert len(several.dagster_run_ids) == 9, several.dagster_run_ids
    for name in KEYS:
        assert set(batched[name]) == set(DAYS), name
        assert len({r["run"] for r in batched[name].values()}) == 3, name
        for partition in DAYS:
            got = {k: v for k, v in batched[name][partition].items() if k != "run"}
            want = {k: v for k, v in each[name][partition].items() if k != "run"}
            assert got == want, (name, partition)
    assert batched["web/rolling"]["2026-01-05"]["window/events"] == "2026-01-03 … 2026-01-05 (3 partitions)"
    assert batched["web/events"]["2026-01-02"]["checks"] == [("SUCCEEDED", True)]

    again = run(defs_dir=defs_dir)  # the rule, and the automation sensor, find nothing left
    assert {r.key: r.status for r in again.outcomes} == dict.fromkeys(KEYS, "reused"), again.outcomes
    assert automation_partitions(defs_dir) == {}


def status(name: str) -> dict[str, str]:
    """Dagster's status of each partition of ``name`` (what the UI's partition bar shows)."""
    from views import stack_instance

    key = dg.AssetKey.from_user_string(name)
    with stack_instance() as instance:
        parts = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-08")
        found = instance.get_status_by_partition(key, DAYS, parts) or {}
    return {p: s.value for p, s in found.items() if s is not None}


def test_a_partition_refused_in_a_run_of_several_fails_alone_blocks_what_reads_it_and_is_held(
    home, defs_dir, write_pipeline
):
    folder = write(write_pipeline, per_run=3)
    bad = folder / "landing" / "2026-01-03.csv"
    day("2026-01-03", clicks=-9).to_csv(bad, index=False)
    first = run(defs_dir=defs_dir)
    found = rows(first)
    assert (found["web/events"].status, found["web/events"].detail) == (
        "failed",
        "6 partitions built (2026-01-01 … 2026-01-07): never built; partition 2026-01-03 failed: "
        "check failed: expect_0_column_values_to_be_between; not stored",
    )
    # The others of its run were built: only the refused day is failed in Dagster's record.
    assert status("web/events") == {d: "FAILED" if d == "2026-01-03" else "MATERIALIZED" for d in DAYS}
    # What reads it is not launched for that day, and says which partition blocked it.
    assert (found["web/busy"].status, found["web/busy"].detail) == (
        "blocked",
        "6 partitions built (2026-01-01 … 2026-01-07): never built; partition 2026-01-03 blocked: "
        "web/events[2026-01-03] failed",
    )
    assert found["web/rolling"].detail == (  # the windows over day 3: days 3, 4 and 5
        "4 partitions built (2026-01-01 … 2026-01-07): never built; partition 2026-01-03 blocked (and 2 more): "
        "web/events[2026-01-03] failed"
    )
    assert "2026-01-03" not in status("web/busy")

    second = run(defs_dir=defs_dir)  # the same file fails the same checks: held, not tried again
    assert second.dagster_run_ids == [], [(o.key, o.status, o.detail) for o in second.outcomes]
    assert rows(second)["web/events"].detail.startswith("partition 2026-01-03 refused in run ")

    day("2026-01-03", clicks=1).to_csv(bad, index=False)
    os.utime(bad, ns=(5, 5))
    fixed = run(defs_dir=defs_dir)
    assert fixed.ok, [(o.key, o.status, o.detail) for o in fixed.outcomes]
    assert rows(fixed)["web/events"].detail.startswith("1 partition built (2026-01-03)")
    assert rows(fixed)["web/rolling"].detail.startswith("3 partitions built (2026-01-03 … 2026-01-05)")
    assert status("web/rolling") == dict.fromkeys(DAYS, "MATERIALIZED")


SLOW = PIPELINE.split("    busy:")[0].replace(
    "      expectations:", "      transform: transforms:slow_when_flagged\n      expectations:"
)


def test_a_run_of_several_partitions_killed_part_way_keeps_those_it_finished(
    home, defs_dir, write_pipeline, tmp_path, monkeypatch
):
    import signal
    import subprocess
    import sys

    from conftest import REPO

    from definitions.cli.backfill import backfill

    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    write_pipeline("web", SLOW.format(per_run=7), {f"landing/{d}.csv": day(d) for d in DAYS})
    flag = tmp_path / "slow-day"
    flag.write_text("2026-01-03")  # its partition sleeps there
    env = {**os.environ, "SLOW_DAY_FLAG": str(flag), "PYTHONPATH": str(REPO / "tests")}
    command = [sys.executable, "-m", "definitions.cli.main", "backfill", "web/events", "--defs", str(defs_dir)]
    child = subprocess.Popen(
        command, env=env, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True
    )
    seen = []
    try:
        assert child.stderr is not None
        for line in child.stderr:
            seen.append(line)
            if "web/events[2026-01-03]: loading" in line:  # in its transform, asleep, in the one run of 7
                break
        else:
            pytest.fail(f"the backfill ended before its third partition: {''.join(seen)[-2000:]}")
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    flag.unlink()
    report, said = backfill("web/events", defs_dir=defs_dir)
    # Days 1 and 2 were recorded as they finished, inside the killed run: not built again.
    assert said == ["web/events: 5 of 7 partitions to build (--only stale): 2026-01-03 … 2026-01-07 (5)"]
    assert report.ok and len(report.dagster_run_ids) == 1, report.outcomes


def test_partitions_that_fail_on_their_data_or_code_in_a_run_of_several_fail_alone_each_saying_why(
    home, defs_dir, write_pipeline, monkeypatch
):
    import dagster as dg
    from views import stack_instance

    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    monkeypatch.setenv("FAIL_DAY", "2026-01-04")
    text = (
        PIPELINE.split("    busy:")[0]
        .format(per_run=7)
        .replace("      expectations:", "      transform: transforms:fails_on_day\n      expectations:")
    )
    folder = write_pipeline("web", text, {f"landing/{d}.csv": day(d) for d in DAYS[:5]}).parent
    (folder / "landing" / "2026-01-02.csv").write_text("")  # unreadable: a data error
    report = run(defs_dir=defs_dir)
    events = rows(report)["web/events"]
    assert events.status == "failed"
    assert events.detail.startswith("3 partitions built (2026-01-01 … 2026-01-05): never built; partition 2026-01-02 "
                                    "failed (and 1 more): "), events.detail  # fmt: skip
    assert status("web/events") == {
        "2026-01-01": "MATERIALIZED",
        "2026-01-02": "FAILED",
        "2026-01-03": "MATERIALIZED",
        "2026-01-04": "FAILED",
        "2026-01-05": "MATERIALIZED",
    }
    with stack_instance() as instance:
        [failure] = instance.all_logs(report.dagster_run_ids[0], of_type=dg.DagsterEventType.STEP_FAILURE)
    message = failure.dagster_event.step_failure_data.error.cause.message
    lines = message.splitlines()
    # The step's error: the failure that is not refused data first (what an alert's one line says), then each.
    said = "partition 2026-01-04: transform transforms:fails_on_day raised ValueError: no clicks can be counted on 2026-01-04"
    assert lines[0] == f"resources.errors.DataError: 2 of 5 partitions failed: {said} (and 1 more)", lines
    assert lines[1] == said
    assert lines[2].startswith("partition 2026-01-02: ") and "cannot read as csv" in lines[2], lines


def test_a_store_failing_in_a_run_of_several_stops_it_there_and_the_next_run_builds_the_rest(
    home, defs_dir, write_pipeline, monkeypatch
):
    import errno

    from views import stack_instance

    import resources.artifacts as artifacts

    write_pipeline(
        "web", PIPELINE.split("    busy:")[0].format(per_run=7), {f"landing/{d}.csv": day(d) for d in DAYS[:5]}
    )
    real = artifacts._atomic_write

    def full_on_day_2(path, data):  # the disk fills up on day 2: the store's error, not the data's
        if "partition=2026-01-02" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(artifacts, "_atomic_write", full_on_day_2)
    report = run(defs_dir=defs_dir)
    events = rows(report)["web/events"]
    assert events.detail.startswith(
        "1 partition built (2026-01-01): never built; partition 2026-01-02 failed (and 3 more): "
        "artifact store (local): cannot write web/events/partition=2026-01-02/"
    ), events.detail
    assert events.detail.endswith(": No space left on device"), events.detail
    assert status("web/events") == {d: "MATERIALIZED" if d == "2026-01-01" else "FAILED" for d in DAYS[:5]}
    with stack_instance() as instance:
        [failure] = instance.all_logs(report.dagster_run_ids[0], of_type=dg.DagsterEventType.STEP_FAILURE)
        # The day the store failed on records no check result: its data was judged, not stored.
        checks = instance.event_log_storage.get_asset_check_partition_info(
            [dg.AssetCheckKey(dg.AssetKey(["web", "events"]), "expect_0_column_values_to_be_between")],
            partition_keys=["2026-01-01", "2026-01-02"],
        )
    found = {c.partition_key: c.latest_execution_status.value for c in checks}
    assert found["2026-01-01"] == "SUCCEEDED" and found.get("2026-01-02") != "SUCCEEDED", found
    error = failure.dagster_event.step_failure_data.error.cause
    lines = error.message.splitlines()
    assert error.cls_name == "ResourceError" and "(partition 2026-01-02; 3 after it not tried)" in lines[0], lines
    assert lines[2:] == [f"partition {d}: not tried: the run stopped at partition 2026-01-02" for d in DAYS[2:5]], lines

    monkeypatch.setattr(artifacts, "_atomic_write", real)  # space again
    again = rows(run(defs_dir=defs_dir))["web/events"]
    assert again.detail.startswith("4 partitions built (2026-01-02 … 2026-01-05)"), again.detail
