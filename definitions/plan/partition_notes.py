"""What `slipway plan` says of partitioned datasets: how many partitions a change builds.

``events: all 365 partitions rebuild`` on a definition change, ``1 of 365 partitions rebuild`` for
a changed file, the new partitions when a range grows, and what a new partitioning leaves.
Counted from the definitions and the files git tracks, without Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from definitions.plan.sides import Definition, Side

if TYPE_CHECKING:
    from definitions.plan.compare import AssetChange


def _partitions_of(side: Side, definition: Definition | None) -> int | None:
    """How many partitions ``definition`` has on ``side`` (None: not partitioned, or not known)."""
    from assets.spec.partitions import count, key_of_file

    if definition is None or definition.partitions is None:
        return None
    files = None
    if definition.partition_files is not None:
        source, template = definition.partition_files
        files = len({k for f in side.data.get(source, {}) if (k := key_of_file(template, f)) is not None})
    return count(definition.partitions, files=files)


def _touched(base: Side, head: Side, definition: Definition) -> int:
    """How many partitions of ``definition`` have a file added or modified between the sides."""
    from assets.spec.partitions import key_of_file

    if definition.partition_files is None:
        return 0
    source, template = definition.partition_files
    before, after = base.data.get(source, {}), head.data.get(source, {})
    changed = [path for path, blob in after.items() if before.get(path) != blob]
    return len({key for path in changed if (key := key_of_file(template, path)) is not None})


def partition_notes(base: Side, head: Side, changes: dict[str, AssetChange]) -> None:
    """Say, for each partitioned dataset, how many partitions a change builds, and what a new partitioning leaves.

    ``events: 365 partitions, definition changed``: a definition change rebuilds every partition,
    a changed file its own partition, a partitioning that changed leaves the partitions built
    before in the record, unread. A range that grew builds the new partitions alone.
    """
    from assets.spec.partitions import describe
    from assets.spec.versions import partitions_shape
    from definitions.plan.compare import AssetChange

    for key, new in head.assets.items():
        old, change = base.assets.get(key), changes.get(key)
        before, after = _partitions_of(base, old), _partitions_of(head, new)
        if old is None or (old.partitions is None and new.partitions is None):
            if change is not None and after is not None:
                change.why.append(f"{after} partitions build")
            continue
        if (
            old.partitions is None
            or new.partitions is None
            or (
                partitions_shape(old.partitions.model_dump(mode="json"))
                != partitions_shape(new.partitions.model_dump(mode="json"))
            )
        ):
            was = "built whole" if old.partitions is None else f"{before} partitions ({describe(old.partitions)})"
            now = (
                "it builds whole"
                if new.partitions is None
                else f"{after} partitions build ({describe(new.partitions)})"
            )
            note = f"its partitioning changed: what was {was} stays in the record, unread; {now}"
        elif change is None:
            if before == after or after is None or before is None:
                continue
            more = after - before
            note = f"its partitions went from {before} to {after}: " + (
                f"the {more} new one{'s' if more > 1 else ''} build, the others stay as they are"
                if more > 0
                else f"the {-more} left out stay in the record, unread"
            )
            changes[key] = change = AssetChange(key, new.kind, "changed", [], new.where)
        elif change.attributes or change.code:
            note = f"all {after} partitions rebuild"
        elif change.status == "changed":  # its files alone: the partitions of files added or modified
            note = f"{_touched(base, head, new)} of {after} partitions rebuild"
        else:
            note = f"the partitions of its {after} whose inputs change rebuild"
        change = changes.get(key) or change
        if change is not None:
            change.why.append(note)
