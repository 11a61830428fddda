"""The latest tick of a retrain schedule, as croniter computes it: at or before now, never after."""

from __future__ import annotations

from datetime import UTC, datetime

from assets.spec.schedules import last_tick

MONDAY_3AM = datetime(2026, 11, 23, 3, 0, tzinfo=UTC).timestamp()


def test_a_tick_at_exactly_now_is_the_latest_one():
    assert last_tick("0 3 * * 1", MONDAY_3AM) == MONDAY_3AM


def test_just_before_a_tick_the_latest_is_the_one_before():
    assert last_tick("0 3 * * 1", MONDAY_3AM - 0.5) == MONDAY_3AM - 7 * 86400
    assert last_tick("*/15 * * * *", MONDAY_3AM + 899.9) == MONDAY_3AM


def test_a_schedule_that_never_ticks_has_no_latest_tick():
    assert last_tick("0 0 31 2 *", MONDAY_3AM) is None
