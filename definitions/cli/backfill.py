"""`slipway backfill`: rebuild the partitions of a dataset that need it, a run per partition.

Which partitions need it is the rebuild predicate per partition (never built, failed, definition
changed, their files or input partition changed: :mod:`assets.automation.partition_record`), the
one `slipway run` and the automation sensor use; ``--only`` narrows it to the missing or the
failed ones. Each partition's run is recorded as it ends, so a backfill killed part way is
resumed by running it again: the partitions it finished are current and not built again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from assets.automation.partition_record import ONLY, only
from assets.automation.staleness import Reason, Why
from assets.spec.metrics import suggest
from definitions.cli.runner import RunReport, observe, resolve_imports
from definitions.cli.state import exclusive
from definitions.paths import defs_folder
from resources.errors import DefinitionError
from stacks import load_stack, slipway_home


def backfill(
    dataset: str,
    stack_name: str | None = None,
    defs_dir: Path | None = None,
    start: str | None = None,
    end: str | None = None,
    partitions: Sequence[str] = (),
    wanted: str = "stale",
    say: Callable[[str], None] = lambda line: None,
) -> tuple[RunReport, list[str]]:
    """Build the partitions of ``dataset`` (``pipeline/name``) that need it; the report and what was decided, as lines.

    ``start``/``end`` bound the partitions (both included, in the definition's order);
    ``partitions`` names them; ``wanted`` is ``stale`` (every reason), ``missing`` or ``failed``.
    ``say`` is given each line of what was decided before anything is built.
    """
    import dagster as dg

    from assets.spec.loader import load_pipelines
    from definitions.checks import check_imports
    from definitions.cli.execute import Engine

    started = time.perf_counter()
    if wanted not in ONLY:
        raise DefinitionError(f"--only {wanted}: one of {', '.join(ONLY)}")
    if partitions and (start or end):
        raise DefinitionError("--partitions names the partitions: it goes without --from and --to")
    loaded = load_stack(stack_name)
    folder = (defs_dir or defs_folder()).resolve()
    pipelines = load_pipelines(folder)
    check_imports(pipelines, loaded.stack.allowed_imports)
    with exclusive(slipway_home()):
        engine = Engine(loaded, folder)
        try:
            key = dg.AssetKey.from_user_string(dataset.replace(".", "/"))
            if not engine.graph.has(key) or key not in engine.graph.materializable_asset_keys:
                names = [k.to_user_string() for k in engine.graph.materializable_asset_keys]
                raise DefinitionError(f"no dataset {dataset!r}{suggest(dataset, names)}")
            if engine.graph.get(key).partitions_def is None:
                raise DefinitionError(f"{dataset} is not partitioned: `slipway run {key.path[0]}` builds it whole")
            owner = key.path[0]
            engine.observe(observe([p for p in pipelines if p.spec.name == owner], None, loaded.stack.data_roots))
            record = engine.record()
            every = record.partitions(key).keys()
            chosen = _selected(every, start, end, partitions)
            reasons = record.partition_reasons(key, chosen)
            held = [p for p in chosen if p in record.partitions(key).held]  # the definition's order
            if wanted == "failed":  # asked for by name: refused ones are tried again too
                reasons.update({p: [Reason(Why.FAILED)] for p in held})
                reasons = {p: reasons[p] for p in chosen if p in reasons}  # the definition's order
            todo = only(reasons, wanted)
            waiting = sorted(record.waiting(key, chosen))
            lines = [
                f"{dataset}: {len(todo)} of {len(chosen)} partition{'s' if len(chosen) != 1 else ''} to build "
                f"(--only {wanted})" + (f": {_span(todo)}" if todo else "")
            ]
            if held and wanted != "failed":
                lines.append(
                    f"{dataset}: {len(held)} refused, held until {'its' if len(held) == 1 else 'their'} files, "
                    f"an input or the definition change (--only failed tries {'it' if len(held) == 1 else 'them'}): "
                    f"{_span(held)}"
                )
            if waiting:
                lines.append(
                    f"{dataset}: {len(waiting)} wait{'s' if len(waiting) == 1 else ''} for files: {_span(waiting)}"
                )
            for line in lines:
                say(line)
            if not todo:
                return RunReport(loaded.name, [], [], time.perf_counter() - started), lines
            resolve_imports(pipelines, loaded.stack.allowed_imports, {dataset})
            why = {key: "; ".join(sorted({str(r) for p in todo for r in reasons[p]}))}
            run_ids, outcomes = engine.launch_partitions([key], {key: todo}, why)
            return RunReport(loaded.name, list(outcomes.values()), run_ids, time.perf_counter() - started), lines
        finally:
            engine.close()


def _selected(every: list[str], start: str | None, end: str | None, named: Sequence[str]) -> list[str]:
    """The partitions of ``every`` between ``start`` and ``end`` (included), or ``named``; a key outside is refused."""
    for key in [*named, *(k for k in (start, end) if k is not None)]:
        if key not in every:
            raise DefinitionError(f"partition {key!r} is not one of the {len(every)} partitions{_nearest(key, every)}")
    if named:
        wanted = set(named)
        return [k for k in every if k in wanted]
    first = every.index(start) if start is not None else 0
    last = every.index(end) if end is not None else len(every) - 1
    if first > last:
        raise DefinitionError(f"--from {start} comes after --to {end}")
    return every[first : last + 1]


def _nearest(key: str, every: list[str]) -> str:
    """``; the nearest is 'x'``: the first or last of ordered keys (dates) when it is outside them, else by spelling."""
    import difflib

    if not every:
        return " (it has none yet)"
    if every == sorted(every) and not every[0] <= key <= every[-1]:  # time windows: before or after them all
        nearest = every[0] if key < every[0] else every[-1]
        return f"; they run from {every[0]!r} to {every[-1]!r}, the nearest is {nearest!r}"
    close = difflib.get_close_matches(key, every, n=1, cutoff=0.5)
    return f"; the nearest is {close[0]!r}" if close else f"; they are {_span(every)}"


def _span(keys: list[str]) -> str:
    """``a`` or ``a … z (26)``."""
    return keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]} ({len(keys)})"
