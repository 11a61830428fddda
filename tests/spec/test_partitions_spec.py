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
