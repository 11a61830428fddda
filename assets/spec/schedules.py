"""When a model retrains by itself: the ``retrain`` block, its durations and cron schedules.

Checked without a library (the schema imports none); the schedule is then run by croniter
(:func:`last_tick`), and a test holds the two to agreeing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from assets.spec.fields import Closed

_DURATION = re.compile(r"^([1-9][0-9]*)([smhd])$")


_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


_CRON_NAMES = {
    3: {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    4: {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}


_LONGEST = 366 * 86400


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``90s``, ``30m``, ``6h`` or ``1d`` (at most a year); ``ValueError`` otherwise."""
    match = _DURATION.match(str(text).strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30m, 6h or 1d (a number and one of s, m, h, d)")
    seconds = int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
    if seconds > _LONGEST:
        raise ValueError(f"{text!r} is longer than a year (366d)")
    return seconds


def cron_problem(text: str) -> str | None:
    """Why ``text`` is not a five-field cron expression (``0 3 * * 1``), or None.

    Checked here without a library (the schema imports none); the schedule is then run by
    croniter (:func:`last_tick`), and a test holds the two to agreeing.
    """
    fields = str(text).split()
    if len(fields) != 5:
        return f"{text!r} has {len(fields)} fields; a cron schedule has 5 (minute hour day-of-month month day-of-week)"
    for index, (field, (what, low, high)) in enumerate(zip(fields, _CRON_FIELDS, strict=True)):
        names = _CRON_NAMES.get(index, {})
        for part in field.split(","):
            base, slash, step = part.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                return f"{text!r}: {what} step {step!r} is not a positive number"
            if base == "*":
                continue
            bounds = base.split("-")
            if len(bounds) > 2:
                return f"{text!r}: {what} {part!r} is not a value, a range a-b or *, with an optional /step"
            for bound in bounds:
                value = names.get(bound.lower()) if not bound.isdigit() else int(bound)
                if value is None or not low <= value <= high:
                    return f"{text!r}: {what} {bound!r} is not in {low}-{high}"
    return _never(text, fields)


def _cron_values(field: str, names: dict[str, int]) -> list[int]:
    """The values of a checked cron field without steps (``1-3,jun`` is 1, 2, 3, 6)."""
    values: list[int] = []
    for part in field.split(","):
        bounds = [int(b) if b.isdigit() else names[b.lower()] for b in part.split("-")]
        values += range(bounds[0], bounds[-1] + 1)
    return values


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _never(text: str, fields: list[str]) -> str | None:
    """Why a parsed schedule never ticks (``0 0 31 2 *``: no February has a 31st), or None.

    Only when the day of the week is ``*``: with both restricted, cron runs on either.
    """
    day, month, weekday = fields[2], fields[3], fields[4]
    if day.startswith("*") or weekday != "*" or "/" in day or "/" in month:
        return None
    days = _cron_values(day, {})
    months = range(1, 13) if month == "*" else _cron_values(month, _CRON_NAMES[3])
    if min(days) > max(_DAYS_IN_MONTH[m - 1] for m in months):
        return f"{text!r} never runs: no month it names has a day {min(days)}"
    return None


class DriftTrigger(Closed):
    """Retrain when the newest data has drifted from the data the champion was trained on.

    Numeric features are scored by ``psi`` (population stability index over the reference's
    deciles), ``ks`` (the two-sample Kolmogorov-Smirnov statistic) or ``chi2`` (Cramer's V of
    the chi-square table over the reference's deciles); categorical ones by ``psi`` or, for
    ``ks`` and ``chi2``, Cramer's V. The dataset's score is its worst feature's.
    """

    method: Literal["psi", "ks", "chi2"] = "psi"
    threshold: float = Field(default=0.2, gt=0, description="Dataset score above which the data counts as drifted.")
    features: list[str] | None = Field(
        default=None, min_length=1, description="Columns to compare; the model's features when omitted."
    )
    served: bool = Field(
        default=False,
        description="Compare what `slipway serve` was asked and its champion answered, instead of new input data.",
    )

    @model_validator(mode="after")
    def _reachable(self) -> DriftTrigger:
        if self.method in ("ks", "chi2") and self.threshold >= 1:
            raise ValueError(f"threshold {self.threshold}: a {self.method} score is at most 1, so it would never fire")
        return self


class Retrain(Closed):
    """When a model retrains by itself (the ``slipway_retrain`` sensor); without it, it never does.

    A trigger retrains the model once per new version of its input data, whatever the trigger
    and however many sensor ticks see it. ``cooldown`` and ``max_per_day`` hold a trigger
    back (it waits, and the sensor says until when); a change to the definition in git is
    rebuilt by the automation sensor whatever the policy says.
    """

    on_new_data: bool = Field(default=False, description="Retrain on each new version of the input data.")
    on_drift: DriftTrigger | None = Field(default=None, description="Retrain when new input data has drifted.")
    schedule: str | None = Field(
        default=None, description='Cron: retrain at each tick if the input has data not trained on, e.g. "0 3 * * 1".'
    )
    cooldown: str | None = Field(default=None, description="Least time between two trainings: 30m, 6h, 1d.")
    max_per_day: int | None = Field(default=None, ge=1, description="Most trainings in any 24 hours.")
    sweep: bool = Field(
        default=True,
        description="A model with a sweep re-runs it on the new data; false: it trains the last winner's params alone.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, schedule: str | None) -> str | None:
        problem = cron_problem(schedule) if schedule is not None else None
        if problem:
            raise ValueError(f"schedule {problem}")
        return schedule

    @field_validator("cooldown")
    @classmethod
    def _duration(cls, cooldown: str | None) -> str | None:
        if cooldown is not None:
            try:
                parse_duration(cooldown)
            except ValueError as exc:
                raise ValueError(f"cooldown {exc}") from None
        return cooldown

    @model_validator(mode="after")
    def _a_trigger(self) -> Retrain:
        if not (self.on_new_data or self.on_drift or self.schedule):
            raise ValueError(
                "no trigger: give on_new_data: true, on_drift or schedule (without one the model never retrains "
                "by itself, and cooldown and max_per_day hold nothing back)"
            )
        return self

    @property
    def cooldown_seconds(self) -> int:
        """The cooldown in seconds (0 without one)."""
        return parse_duration(self.cooldown) if self.cooldown else 0


def last_tick(schedule: str, now: float) -> float | None:
    """The timestamp of the latest tick of ``schedule`` (UTC) at or before ``now`` (croniter), None if it has none."""
    from croniter import CroniterBadDateError, croniter

    # croniter's previous tick is strictly before its start: start a second later, step back once more if past.
    ticks = croniter(schedule, datetime.fromtimestamp(now + 1, UTC))
    try:
        tick = ticks.get_prev(float)
        return tick if tick <= now else ticks.get_prev(float)
    except CroniterBadDateError:
        return None


def schedule_due(schedule: str, arrived: float, now: float) -> tuple[bool, float | None]:
    """Whether a tick of ``schedule`` fell between the first new data's arrival and ``now``, and the latest tick."""
    tick = last_tick(schedule, now)
    return tick is not None and tick >= arrived, tick


def when(timestamp: float) -> str:
    """A timestamp as people read it in the sensor log (UTC)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
