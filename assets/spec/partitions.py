"""A dataset's ``partitions`` block: time windows, a static list, or one partition per landed file.

Checked without a library (the schema imports none); :mod:`assets.data.partitioning` maps a block
to Dagster's partitions definitions. A partitioned file source names its partition in its path
with one placeholder, ``{date}``, ``{region}`` or any other name::

    events:
      source: {path: "data/events/{date}.csv"}
      partitions: {time: {cron: "0 0 * * *", start: 2026-01-01, timezone: UTC}}
    sales:
      source: {path: "data/sales/{region}.parquet"}
      partitions: {static: [eu, us, apac]}
    batches:
      source: {path: "landing/{batch}.csv"}
      partitions: {discover: files, max_partitions_per_run: 50}

``max_partitions_per_run`` builds up to that many partitions of a dataset (and of each dataset
derived from it) in one run: a backfill of many small partitions pays a run's cost once per batch
rather than once per partition, and each partition is still checked, versioned and recorded alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from assets.spec.fields import Closed
from assets.spec.schedules import cron_problem

#: A partition key Slipway accepts: it names a file, a folder in the artifact store and a run tag.
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:=+-]*$"
#: The one placeholder of a partitioned path: ``{date}``, ``{region}``…
PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TimeWindows(Closed):
    """Partitions by time window: one per tick of ``cron`` from ``start`` (to ``end``, else to now)."""

    cron: str = Field(description='When a window starts: "0 0 * * *" is one partition a day.')
    start: dt.date | dt.datetime = Field(description="The first window's start (a date, or a date and time).")
    end: dt.date | dt.datetime | None = Field(
        default=None, description="The end of the last window (exclusive); the last complete window when unset."
    )
    timezone: str = Field(default="UTC", description="The IANA time zone the cron is read in.")
    format: str | None = Field(
        default=None,
        description='How a window is written in keys and file names (strftime): "%Y-%m-%d" for daily or '
        'coarser windows, "%Y-%m-%d-%H:%M" for finer ones, when unset.',
    )

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        problem = cron_problem(cron)
        if problem is not None:
            raise ValueError(problem)
        return cron

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name: UTC, Europe/Paris)") from None
        return name

    @field_validator("format")
    @classmethod
    def _format(cls, fmt: str | None) -> str | None:
        if fmt is None:
            return fmt
        written = dt.datetime(2026, 1, 2, 3, 4).strftime(fmt)
        if not re.match(KEY_PATTERN, written) or "%" in written:
            raise ValueError(f"format {fmt!r} writes {written!r}: a key must be letters, digits and - _ . : = +")
        return fmt

    @model_validator(mode="after")
    def _order(self) -> TimeWindows:
        if self.end is not None and _as_datetime(self.end) <= _as_datetime(self.start):
            raise ValueError(f"`end` {self.end} is not after `start` {self.start}")
        return self

    @property
    def key_format(self) -> str:
        """The strftime format of a key: ``format``, else by how fine the windows are."""
        if self.format is not None:
            return self.format
        minute, hour = self.cron.split()[:2]
        return "%Y-%m-%d" if minute.isdigit() and hour.isdigit() else "%Y-%m-%d-%H:%M"


def _as_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime(value.year, value.month, value.day)


class Partitions(Closed):
    """How a dataset is split: exactly one of ``time``, ``static`` or ``discover``.

    Each partition is built, checked, versioned and stored on its own (a run each, or up to
    ``max_partitions_per_run`` a run); a backfill rebuilds only the partitions that need it.
    """

    time: TimeWindows | None = None
    static: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="The partition keys: [eu, us, apac]."
    )
    discover: Literal["files"] | None = Field(
        default=None, description="`files`: one partition per file of the source that fits its path's placeholder."
    )
    max_partitions_per_run: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="How many partitions one run builds (of this dataset, and of each dataset derived from it); "
        "each is still checked, versioned and recorded on its own. 1: a run per partition.",
    )

    @field_validator("static")
    @classmethod
    def _keys(cls, keys: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for key in keys or []:
            if not re.match(KEY_PATTERN, key) or "..." in key:
                raise ValueError(f"partition key {key!r}: letters, digits and - _ . : = + only (not first, no ...)")
        listed = list(keys or ())
        twice = sorted({k for k in listed if listed.count(k) > 1})
        if twice:
            raise ValueError(f"partition key {twice[0]!r} is listed twice")
        return keys

    @model_validator(mode="after")
    def _one_kind(self) -> Partitions:
        kinds = [k for k in ("time", "static", "discover") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("`partitions` needs exactly one of `time`, `static` or `discover`")
        return self

    @property
    def kind(self) -> str:
        """``time``, ``static`` or ``discover``."""
        return next(k for k in ("time", "static", "discover") if getattr(self, k) is not None)


def placeholders(path: str) -> list[str]:
    """The placeholder names of a source path, in order: ``data/{date}.csv`` has ``["date"]``."""
    return PLACEHOLDER.findall(path)


def fill(path: str, key: str) -> str:
    """``path`` with its placeholder replaced by partition ``key``."""
    return PLACEHOLDER.sub(lambda _: key, path, count=1)


def key_of_file(path: str, relative: str) -> str | None:
    """The partition key a file's path (relative like ``path``) gives, or None when it does not fit."""
    before, _, after = PLACEHOLDER.split(path, maxsplit=1)
    pattern = re.escape(before) + r"(?P<key>[^/]+?)" + re.escape(after)
    found = re.fullmatch(pattern, relative)
    if found is None or not re.match(KEY_PATTERN, found.group("key")) or "..." in found.group("key"):
        return None
    return found.group("key")


def declaring(datasets: Mapping[str, Any]) -> dict[str, str]:
    """For each partitioned dataset of a pipeline, the sourced dataset whose ``partitions`` it has (maybe itself).

    Derived datasets take their partitioned inputs' (those of the same pipeline); inputs split
    differently are refused by :func:`partition_problems` first.
    """
    found: dict[str, str] = {}
    changed = True
    while changed:  # inputs first, whatever the order of the YAML
        changed = False
        for name, dataset in datasets.items():
            if name in found:
                continue
            if dataset.partitions is not None:
                found[name], changed = name, True
                continue
            owners = sorted({found[i] for i in dataset.inputs or [] if i in found})
            if owners:
                found[name], changed = owners[0], True
    return found


def partition_problems(
    datasets: Mapping[str, Any], models: Mapping[str, Any] | None = None, predictions: Mapping[str, Any] | None = None
) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with a pipeline's partitions, as ``(location, message)``.

    A partitioned source without its placeholder (or the reverse), a derived dataset whose
    inputs are split differently, a model's ``window`` on an unpartitioned dataset, and what is
    not built over partitions yet (drift, prediction tables).
    """
    found = [problem for name, dataset in datasets.items() for problem in _source_problems(name, dataset)]
    owners = declaring(datasets)
    for name, dataset in datasets.items():
        split = {i: owners[i] for i in dataset.inputs or [] if i in owners}
        # How they are split; how many a run builds is no part of it.
        blocks = {
            owner: datasets[owner].partitions.model_copy(update={"max_partitions_per_run": 1})
            for owner in split.values()
        }
        if len(set(blocks.values())) > 1:
            said = ", ".join(f"{i} (as {o})" for i, o in split.items())
            message = f"its inputs are partitioned differently: {said}; a derived dataset runs per partition of one"
            found.append((("datasets", name, "inputs"), message))
    for name, dataset in datasets.items():
        for ref, window in (dataset.windows if hasattr(dataset, "windows") else {}).items():
            at = ("datasets", name, "inputs", ref, "window")
            found += _window_problems(ref, owners.get(ref), datasets, at, window)
    for name, model in (models or {}).items():
        if model.window is not None and model.dataset in datasets and model.dataset not in owners:
            message = f"`window` takes the last partitions of a partitioned dataset; {model.dataset!r} is not one"
            found.append((("models", name, "window"), message))
        drift = model.retrain.on_drift if model.retrain else None
        if drift is not None and not drift.served and model.dataset in owners:
            message = f"drift over a partitioned dataset ({model.dataset!r}) is not built yet; retrain on new data"
            found.append((("models", name, "retrain", "on_drift"), message))
    for name, scored in (predictions or {}).items():
        if scored.dataset in owners:
            message = f"scoring a partitioned dataset ({scored.dataset!r}) is not built yet"
            found.append((("predictions", name, "dataset"), message))
    return found


def _window_problems(
    ref: str, owner: str | None, datasets: Mapping[str, Any], at: tuple[str | int, ...], window: int | str = 1
) -> list[tuple[tuple[str | int, ...], str]]:
    """A rolling window reads an input of this pipeline partitioned by time (its partitions have an order)."""
    if owner is None:
        message = f"`window` reads the last partitions of a partitioned dataset of this pipeline; {ref!r} is not one"
        return [(at, message)]
    block = datasets[owner].partitions
    if block.time is None:
        kind = "static keys" if block.static is not None else "the files found"
        message = (
            f"`window` reads the partitions before each one, which needs time partitions; {ref!r} is split by {kind}"
        )
        return [(at, message)]
    try:
        window_partitions(window, block.time)
    except ValueError as exc:
        return [(at, str(exc))]
    return []


def window_partitions(window: int | str, time: TimeWindows) -> int:
    """How many partitions of ``time`` a rolling ``window`` reads: ``7``, or ``30d`` over daily windows (30).

    A window in time needs windows of one length (a daily or hourly cron, not a monthly one) and
    a whole number of them, at most 99; ``ValueError`` says which is not so.
    """
    from assets.spec.schedules import parse_duration

    if isinstance(window, int):
        return window
    period = _period(time.cron, _as_datetime(time.start))
    if period is None:
        raise ValueError(
            f"`window: {window}` counts time, but the windows of cron {time.cron!r} are not all as long; "
            "give a number of partitions"
        )
    seconds = parse_duration(window)
    if seconds % period:
        raise ValueError(f"`window: {window}` is not a whole number of the input's {_said(period)} windows")
    if seconds // period > 99:
        raise ValueError(
            f"`window: {window}` is {seconds // period} of the input's {_said(period)} windows; at most 99 "
            "(Dagster records the data versions of that many an input read)"
        )
    return seconds // period


@functools.cache
def _period(cron: str, start: dt.datetime) -> int | None:
    """The length of each window of ``cron`` in seconds, on its clock; None when they differ.

    Only windows within a day or a week can be all as long: a cron naming days of the month or
    months (``0 0 */2 * *``, ``0 0 1-28 * *``, ``0 0 * 1-6 *``) has longer ones at a month's end
    or a season's. Within those, the ticks of three days (weeks) show whether they are even.
    """
    from croniter import croniter

    minute, hour, day, month, weekday = cron.split()
    every = {"day": ("*", "*/1", "1-31"), "month": ("*", "*/1", "1-12"), "weekday": ("*", "*/1", "0-6", "0-7")}
    if day not in every["day"] or month not in every["month"]:
        return None
    weekly = weekday not in every["weekday"]
    ticks = croniter(cron, start)
    previous = ticks.get_next(dt.datetime)
    end = previous + dt.timedelta(days=21 if weekly else 3)
    gaps: set[int] = set()
    while previous < end:
        tick = ticks.get_next(dt.datetime)
        gaps.add(int((tick - previous).total_seconds()))
        previous = tick
    return gaps.pop() if len(gaps) == 1 else None


def _said(seconds: int) -> str:
    """``1d``, ``6h``, ``15m``: a window's length as a duration is written."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _source_problems(name: str, dataset: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """A partitioned dataset reads one file (or glob) per partition, named by its path's one placeholder."""
    source, partitions = dataset.source, dataset.partitions
    named = placeholders(source.path or "") if source is not None else []
    at: tuple[str | int, ...] = ("datasets", name, "partitions")
    if partitions is None:
        if not named:
            return []
        message = (
            f"source path {source.path!r} names a partition {{{named[0]}}} but the dataset has no `partitions` "
            "(add one, or write the path without braces)"
        )
        return [(("datasets", name, "source", "path"), message)]
    if dataset.inputs is not None:
        message = (
            "a derived dataset takes its inputs' partitions: remove `partitions` (declare them where the data is read)"
        )
        return [(at, message)]
    if source.path is None:
        return [(at, f"only a file source (`path`) can be partitioned; this one is a `{source.kind}` source")]
    if partitions.discover is not None and any(mark in fill(source.path, "x") for mark in "*?["):
        message = (
            f"with `discover: files` each file is a partition, named by the placeholder: {source.path!r} has a "
            "wildcard too (write the path of one file, e.g. landing/{batch}.csv)"
        )
        return [(("datasets", name, "source", "path"), message)]
    if len(named) != 1:
        message = (
            "a partitioned source's path names its partition with exactly one placeholder, e.g. "
            f"data/events/{{date}}.csv; {source.path!r} has {len(named) or 'none'}"
        )
        return [(("datasets", name, "source", "path"), message)]
    return []


def count(block: Partitions, now: dt.datetime | None = None, files: int | None = None) -> int | None:
    """How many partitions ``block`` has: its keys, its windows up to ``end`` and ``now``, or ``files``.

    Counted without Dagster (``slipway plan`` imports none): a window is counted when it starts at
    or after ``start`` and ends at or before the end, as Dagster's time windows are.
    """
    if block.static is not None:
        return len(block.static)
    if block.discover is not None:
        return files
    assert block.time is not None
    from zoneinfo import ZoneInfo

    from croniter import croniter

    zone = ZoneInfo(block.time.timezone)
    start = _as_datetime(block.time.start).replace(tzinfo=zone)
    # Up to ``end``, and never past now: Dagster has no partition for a window not yet ended.
    end = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    if block.time.end is not None:
        end = min(end, _as_datetime(block.time.end).replace(tzinfo=zone))
    ticks = croniter(block.time.cron, start - dt.timedelta(seconds=1))
    ticks.get_next(dt.datetime)  # the first window's start
    found = 0
    while found < 1_000_000 and ticks.get_next(dt.datetime) <= end:  # each window's end
        found += 1
    return found


def describe(block: Partitions) -> str:
    """``daily from 2026-01-01`` / ``static (eu, us, apac)`` / ``one per file``: a block in words."""
    if block.static is not None:
        return f"static ({', '.join(block.static)})"
    if block.discover is not None:
        return "one per file"
    assert block.time is not None
    return f"time ({block.time.cron}) from {block.time.start}"
