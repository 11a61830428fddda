"""The partitions block without Dagster: its checks, the placeholder, and the count `slipway plan` shows."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from assets.spec.partitions import Partitions, count, fill, key_of_file, placeholders


@pytest.mark.parametrize(
    ("time", "end"),
    [
        ({"cron": "0 0 * * *", "start": "2025-01-01", "end": "2026-01-01"}, None),
        ({"cron": "0 0 * * *", "start": "2026-01-01", "end": "2099-01-01"}, dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
        ({"cron": "0 * * * *", "start": "2026-03-28", "end": "2026-03-31", "timezone": "Europe/Paris"}, None),
        (
            {
                "cron": "*/15 * * * *",
                "start": "2026-11-01T00:07:00",
                "end": "2026-11-02",
                "timezone": "America/New_York",
            },
            None,
        ),
        ({"cron": "0 0 * * 1", "start": "2026-01-01", "timezone": "UTC"}, dt.datetime(2026, 6, 1, tzinfo=dt.UTC)),
    ],
)
def test_the_count_plan_shows_is_the_number_of_dagsters_time_windows(time, end):
    import dagster as dg

    from assets.data.partitioning import partitions_def

    block = Partitions.model_validate({"time": time})
    ours = count(block, now=end)
    theirs = partitions_def("p", "d", block)
    keys = theirs.get_partition_keys(current_time=end) if end else theirs.get_partition_keys()  # now: today
    assert isinstance(theirs, dg.TimeWindowPartitionsDefinition)
    assert ours == len(keys) and ours > 0


def test_a_key_is_read_from_a_file_name_only_when_it_fits():
    assert placeholders("${SLIPWAY_HOME}/landing/{date}.csv") == ["date"]
    assert fill("landing/{date}.csv", "2026-01-02") == "landing/2026-01-02.csv"
    assert key_of_file("landing/{batch}.csv", "landing/b_7.csv") == "b_7"
    assert key_of_file("landing/{batch}.csv", "landing/notes.txt") is None
    assert key_of_file("landing/{batch}.csv", "landing/b 7.csv") is None  # a key holds no space
    assert key_of_file("landing/{batch}.csv", "landing/a...b.csv") is None  # nor Dagster's range mark


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({}, "`partitions` needs exactly one of `time`, `static` or `discover`"),
        ({"static": []}, "at least 1 item"),
        ({"static": ["eu", "eu"]}, "partition key 'eu' is listed twice"),
        ({"static": ["e u"]}, "partition key 'e u': letters, digits"),
        ({"time": {"cron": "0 0 * *", "start": "2026-01-01"}}, "has 4 fields"),
        ({"time": {"cron": "0 0 * * *", "start": "2026-01-01", "timezone": "Mars/Base"}}, "unknown time zone"),
        ({"time": {"cron": "0 0 * * *", "start": "2026-01-02", "end": "2026-01-01"}}, "is not after `start`"),
        ({"time": {"cron": "0 0 * * *", "start": "2026-01-01", "format": "%Y/%m/%d"}}, "a key must be letters"),
    ],
)
def test_a_wrong_partitions_block_is_refused_saying_why(block, message):
    with pytest.raises(ValidationError) as raised:
        Partitions.model_validate(block)
    assert message in str(raised.value)


def _pipeline(rolling_inputs, events_partitions=None):
    from assets.spec.schema import PipelineSpec

    partitions = events_partitions or {"time": {"cron": "0 0 * * *", "start": "2026-01-01"}}
    return PipelineSpec.model_validate(
        {
            "name": "web",
            "datasets": {
                "events": {"source": {"path": "landing/{date}.csv"}, "partitions": partitions},
                "users": {"source": {"path": "users.csv"}},
                "rolling": {"inputs": rolling_inputs, "sql": "select count(*) as n from events"},
            },
        }
    )


def test_an_input_read_over_a_window_is_a_mapping_of_inputs_to_options():
    spec = _pipeline({"events": {"window": 7}, "users": None})
    assert spec.problems() == []
    assert spec.datasets["rolling"].windows == {"events": 7}
    assert list(spec.datasets["rolling"].inputs) == ["events", "users"]
    assert _pipeline(["events"]).datasets["rolling"].windows == {}


@pytest.mark.parametrize(
    ("inputs", "partitions", "message"),
    [
        (
            {"users": {"window": 3}},
            None,
            "`window` reads the last partitions of a partitioned dataset of this pipeline; 'users' is not one",
        ),
        (
            {"events": {"window": 3}},
            {"static": ["eu", "us"]},
            "`window` reads the partitions before each one, which needs time partitions; 'events' is split by "
            "static keys",
        ),
        (
            {"events": {"window": 3}},
            {"discover": "files"},
            "which needs time partitions; 'events' is split by the files found",
        ),
    ],
)
def test_a_window_over_an_input_that_has_no_time_partitions_is_refused(inputs, partitions, message):
    problems = _pipeline(inputs, partitions).problems()
    assert [(at, text) for at, text in problems if message in text] == [
        (("datasets", "rolling", "inputs", next(iter(inputs)), "window"), problems[0][1])
    ], problems


@pytest.mark.parametrize(("window", "message"), [(0, "a window of 0 partitions: from 1 to 99"), (100, "of 100")])
def test_a_window_of_no_partition_or_more_than_dagster_tracks_is_refused(window, message):
    with pytest.raises(ValidationError) as raised:
        _pipeline({"events": {"window": window}})
    assert message in str(raised.value)
    about = [e for e in raised.value.errors() if "window" in e["loc"]]
    assert len(about) == 1, about  # one line, not one per type a window may have


def test_a_window_is_part_of_the_definition_and_a_mapping_without_options_is_the_list():
    from assets.spec.versions import code_version

    def version(inputs):
        return code_version("dataset", _pipeline(inputs).datasets["rolling"])

    assert version({"events": None, "users": {}}) == version(["events", "users"])
    assert version({"events": {"window": 3}}) != version({"events": {"window": 4}}) != version(["events"])


def test_how_many_partitions_a_run_builds_is_not_part_of_the_partitioning_nor_of_the_code_version():
    from assets.data.partitioning import partitions_per_run
    from assets.spec.schema import PipelineSpec
    from assets.spec.versions import code_version

    def spec(events_per_run: int, clicks_per_run: int) -> PipelineSpec:
        daily = {"cron": "0 0 * * *", "start": "2026-01-01"}
        return PipelineSpec.model_validate(
            {
                "name": "web",
                "datasets": {
                    "events": {
                        "source": {"path": "landing/{date}.csv"},
                        "partitions": {"time": daily, "max_partitions_per_run": events_per_run},
                    },
                    "clicks": {
                        "source": {"path": "clicks/{date}.csv"},
                        "partitions": {"time": daily, "max_partitions_per_run": clicks_per_run},
                    },
                    "both": {"inputs": ["events", "clicks"], "sql": "select * from events join clicks using (day)"},
                },
            }
        )

    assert spec(7, 1).problems() == []  # split the same way: batched differently is no mismatch
    assert partitions_per_run(spec(7, 1), "both") == 1  # a derived dataset takes its inputs' smallest
    assert partitions_per_run(spec(7, 7), "both") == 7
    assert partitions_per_run(spec(7, 1), "events") == 7
    assert code_version("dataset", spec(7, 1).datasets["events"]) == code_version(
        "dataset", spec(1, 1).datasets["events"]
    )
    with pytest.raises(ValidationError, match="less than or equal to 1000"):
        spec(1001, 1)


@pytest.mark.parametrize(
    ("window", "cron", "partitions"),
    [
        ("3d", "0 0 * * *", 3),
        ("12h", "0 * * * *", 12),
        ("2d", "0 6 * * *", 2),
        ("45m", "*/15 * * * *", 3),
        ("3d", "0 0 */1 * *", 3),  # every day, written otherwise
        ("3d", "0 0 1-31 1-12 *", 3),
        ("14d", "0 0 * * 1", 2),
    ],
)
def test_a_window_in_time_reads_that_many_of_the_inputs_windows(window, cron, partitions):
    from assets.data.partitioning import window_counts

    spec = _pipeline({"events": {"window": window}}, {"time": {"cron": cron, "start": "2026-01-01"}})
    assert spec.problems() == []
    assert window_counts(spec, "rolling") == {"events": partitions}
    assert window_counts(_pipeline({"events": {"window": 4}}), "rolling") == {"events": 4}


@pytest.mark.parametrize(
    ("window", "cron", "message"),
    [
        ("36h", "0 0 * * *", "`window: 36h` is not a whole number of the input's 1d windows"),
        ("30d", "0 * * * *", "`window: 30d` is 720 of the input's 1h windows; at most 99"),
        ("60d", "0 0 1 * *", "`window: 60d` counts time, but the windows of cron '0 0 1 * *' are not all as long"),
        ("10d", "0 0 * * 1-5", "are not all as long; give a number of partitions"),
        ("4d", "0 0 */2 * *", "are not all as long"),  # the 31st to the 1st is one day
        ("2d", "0 0 1-28 * *", "are not all as long"),
        ("2d", "0 0 * 1-6 *", "are not all as long"),
    ],
)
def test_a_window_in_time_that_is_not_a_whole_number_of_windows_is_refused_saying_why(window, cron, message):
    problems = _pipeline({"events": {"window": window}}, {"time": {"cron": cron, "start": "2026-01-01"}}).problems()
    assert len(problems) == 1 and problems[0][0] == ("datasets", "rolling", "inputs", "events", "window"), problems
    assert message in problems[0][1], problems


def test_a_window_that_is_neither_a_count_nor_a_duration_is_refused():
    with pytest.raises(ValidationError, match="is not a duration like 30m, 6h or 1d"):
        _pipeline({"events": {"window": "3 days"}})


def test_a_window_in_time_maps_each_partition_to_that_many_partitions_of_its_input(tmp_path):
    import dagster as dg

    from assets.pipeline import build_pipeline_defs
    from assets.spec.loader import parse_file

    folder = tmp_path / "web"
    folder.mkdir()
    (folder / "defs.yaml").write_text(
        "type: assets.Pipeline\nattributes:\n  name: web\n  datasets:\n"
        "    events:\n      source: {path: 'landing/{date}.csv'}\n"
        "      partitions: {time: {cron: '0 0 * * *', start: 2026-01-01, end: 2026-01-11}}\n"
        "    rolling:\n      inputs: {events: {window: 3d}}\n      sql: select count(*) as n from events\n"
    )
    defs = build_pipeline_defs(parse_file(folder / "defs.yaml"))
    rolling, events = dg.AssetKey(["web", "rolling"]), dg.AssetKey(["web", "events"])
    [asset] = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.key == rolling]
    partitions = asset.partitions_def
    mapping = asset.get_partition_mapping(events)
    mapped = mapping.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys(["2026-01-05"]), partitions, partitions
    )
    assert sorted(mapped.partitions_subset.get_partition_keys()) == ["2026-01-03", "2026-01-04", "2026-01-05"]
    assert asset.metadata_by_key[rolling]["slipway/windows"] == {"web/events": 3}
