"""Reading back Dagster's record of an asset: every materialization, and those with a data version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from assets.automation.staleness import DATA_VERSION_TAG


def materializations(instance: Any, key: Any) -> Iterator[Any]:
    """Every materialization record of ``key``, newest first, a page at a time."""
    cursor = None
    while True:
        page = instance.fetch_materializations(key, limit=100, cursor=cursor)
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def materialized_with(instance: Any, key: Any, data_version: str | None, tag: str = DATA_VERSION_TAG) -> list[str]:
    """The run ids of the materializations of ``key`` with ``data_version``, newest first."""
    return [
        str(record.run_id)
        for record in (materializations(instance, key) if data_version else ())
        if record.asset_materialization is not None
        and (record.asset_materialization.tags or {}).get(tag) == data_version
    ]


def read_recorded(store: Any, key: str, runs: list[str], recorded: str) -> tuple[Any, str]:
    """The first stored copy of data version ``recorded`` of ``key`` among ``runs`` that reads back with that hash.

    ``LookupError`` (naming the first problem, passwords out) when none does.
    """
    from assets.spec.versions import frame_version
    from resources.errors import ResourceError
    from resources.redact import redact

    problems = []
    for run_id in runs:
        try:
            frame = store.read_version(tuple(key.split("/")), run_id)
        except ResourceError:
            raise  # the store is down, not the data gone: the caller may ask again later
        except Exception as exc:  # gone, or unreadable (a truncated or foreign file): try the next copy
            problems.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            continue
        if frame_version(frame) == recorded:
            return frame, run_id
        problems.append(f"{key} of run {run_id[:8]} is not the data it recorded ({recorded})")
    raise LookupError(redact(problems[0]) if problems else f"no stored copy of {key} at data version {recorded}")
