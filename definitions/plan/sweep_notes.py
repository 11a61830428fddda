"""What `slipway plan` says of a model's sweep: which trials are new, which a change invalidates, which stay cached.

A trial is cached by what it trains (the model's definition and code without the sweep, and its
own params) and the data it reads. Between the two sides, a trial whose id and code version
are the same is cached (unless the data changes); one the head adds is new; one whose code
version changed is invalidated (the model's definition or code changed under it); one the head
drops is not run again. Counted from the definitions, without the tracker: a trial of the base
side that failed is tried again too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from definitions.plan.sides import Side

if TYPE_CHECKING:
    from definitions.plan.compare import AssetChange

SHOWN = 8  # trials named in a note; the rest are counted


def _named(ids: list[str], trials: dict[str, tuple[str, str]]) -> str:
    shown = ", ".join(f"{i} ({trials[i][1]})" for i in ids[:SHOWN])
    return shown + (f", and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")


def sweep_notes(base: Side, head: Side, changes: dict[str, AssetChange]) -> None:
    """Add to each changed or stale model with a sweep which of its trials train and which stay cached."""
    for key, new in head.assets.items():
        change = changes.get(key)
        if new.trials is None or change is None or change.status == "removed":
            continue
        old = base.assets.get(key)
        before = (old.trials or {}) if old is not None else {}
        total = len(new.trials)
        sampled = f" ({new.trials_note})" if new.trials_note else ""
        if change.status == "stale":
            change.why.append(f"sweep: if the data changes, all {total} trials train{sampled}")
            continue
        added = [i for i in new.trials if i not in before]
        invalid = [i for i in new.trials if i in before and before[i][0] != new.trials[i][0]]
        cached = total - len(added) - len(invalid)
        dropped = [i for i in before if i not in new.trials]
        parts = [f"{len(added)} new", f"{len(invalid)} invalidated", f"{cached} cached (if its data is the same)"]
        lines = [
            f"sweep: {total} trials{sampled}: {', '.join(parts)}" + (f", {len(dropped)} dropped" if dropped else "")
        ]
        if added and before:
            lines.append(f"new trials: {_named(added, new.trials)}")
        if invalid:
            lines.append(f"invalidated (the model's definition or code changed): {_named(invalid, new.trials)}")
        if dropped:
            lines.append(f"dropped (not run again): {_named(dropped, before)}")
        change.why += lines
