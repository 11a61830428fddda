"""What makes a built asset out of date, without Dagster: the core of the rebuild predicate.

:mod:`assets.automation.rebuild` applies it to the instance's record (for `slipway run` and the
automation sensor); :mod:`definitions.plan.compare` applies it to two revisions of the definitions,
so a plan says "rebuilds" for exactly the reasons a run would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from assets.spec.tags import CODE_VERSION_TAG, DATA_VERSION_TAG, INPUT_VERSION_PREFIX


class Why(StrEnum):
    """The kinds of reason an asset is out of date."""

    FIRST_BUILD = "first_build"
    DEFINITION_CHANGED = "definition_changed"
    NEW_DATA = "new_data"  # an input's data version differs from the one it was built on
    NEW_INPUT = "new_input"  # an input it was not built on
    OUTPUT_LOST = "output_lost"  # what it built is gone from the stores
    ALIAS_MOVED = "alias_moved"  # the alias it is scored by holds another version
    FAILED = "failed"  # a partition whose latest attempt failed
    PARTITIONS = "partitions"  # a partitioned asset: how many partitions, and why (the subject)


@dataclass(frozen=True)
class Reason:
    """One reason an asset is out of date: its kind, and the input (or the lost output's detail) it is about.

    Decided on as data (:attr:`why`, :attr:`subject`); rendered as words only where a person
    reads it (``str(reason)``: the run summary, plan, the sensors' ticks, the UI's metadata).
    """

    why: Why
    subject: str = ""

    def __str__(self) -> str:
        """The words shown for it."""
        return {
            Why.FIRST_BUILD: "first build",
            Why.DEFINITION_CHANGED: "definition changed",
            Why.NEW_DATA: f"{self.subject} has new data",
            Why.NEW_INPUT: f"{self.subject} is a new input",
            Why.OUTPUT_LOST: self.subject,
            Why.ALIAS_MOVED: self.subject,
            Why.FAILED: "its latest attempt failed",
            Why.PARTITIONS: self.subject,
        }[self.why]


def said(reasons: Iterable[Reason]) -> str:
    """Reasons as one line: ``definition changed; shop/orders has new data``."""
    return "; ".join(str(r) for r in reasons)


@dataclass(frozen=True)
class Built:
    """What the instance records about an asset's latest materialization."""

    run_id: str
    timestamp: float
    code_version: str | None
    data_version: str | None
    inputs: Mapping[str, str]
    metadata: Mapping[str, Any]

    @staticmethod
    def of(record: Any) -> Built:
        """From an event log record of a materialization."""
        materialization = record.event_log_entry.asset_materialization
        tags = materialization.tags or {}
        return Built(
            run_id=record.run_id,
            timestamp=record.timestamp,
            code_version=tags.get(CODE_VERSION_TAG),
            data_version=tags.get(DATA_VERSION_TAG),
            inputs={
                k.removeprefix(INPUT_VERSION_PREFIX): v for k, v in tags.items() if k.startswith(INPUT_VERSION_PREFIX)
            },
            metadata={k: getattr(v, "value", v) for k, v in materialization.metadata.items()},
        )


def out_of_date(built: Built | None, code_version: str | None, inputs: Mapping[str, str | None]) -> list[Reason]:
    """Why an asset built as ``built`` is out of date, given its current code version and input data versions.

    Empty when it is current. ``inputs`` maps each input's key to its current data version
    (None: unknown, which never makes it stale). The stores are not asked here (a stored output
    that is gone is :class:`assets.automation.rebuild.Record`'s business).
    """
    if built is None:
        return [Reason(Why.FIRST_BUILD)]
    found = []
    if code_version is not None and built.code_version != code_version:
        found.append(Reason(Why.DEFINITION_CHANGED))
    for name in sorted(inputs):
        current = inputs[name]
        if current is not None and built.inputs.get(name) != current:
            found.append(Reason(Why.NEW_DATA if name in built.inputs else Why.NEW_INPUT, name))
    return found
