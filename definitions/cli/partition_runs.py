"""How `slipway run` and `slipway backfill` launch partitions: a run per partition, or per range of them.

Without ``max_partitions_per_run``, a run per partition builds every asset that needs that
partition. With it, each dataset is launched after what it reads, over runs of up to its ``max_partitions_per_run``
consecutive partitions (:mod:`assets.data.batches` builds and records each partition of a range
alone). A partition whose input partition failed in this command is not launched: it is blocked,
and says which partition. Each run is recorded as it ends, so a command killed part way leaves the
finished partitions (of the run it was in, too) built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from definitions.cli import events
from definitions.cli.outcomes import AssetOutcome

if TYPE_CHECKING:
    from definitions.cli.execute import Engine

#: What a partition not built ended as.
UNBUILT = ("failed", "interrupted", "blocked", "not run")


def per_run(graph: Any, key: dg.AssetKey) -> int:
    """How many partitions of ``key`` one run builds (:data:`assets.data.dataset_asset.PER_RUN_METADATA`)."""
    from assets.data.dataset_asset import PER_RUN_METADATA

    found = graph.get(key).metadata.get(PER_RUN_METADATA)
    return int(getattr(found, "value", found) or 1)


def chunks(order: Sequence[str], todo: Sequence[str], size: int) -> list[list[str]]:
    """``todo`` in runs of up to ``size`` partitions, each consecutive in ``order`` (a run builds a range)."""
    position = {p: i for i, p in enumerate(order)}
    found: list[list[str]] = []
    for partition in sorted(todo, key=lambda p: position.get(p, -1)):
        last = found[-1] if found else None
        if last and len(last) < size and position.get(partition) == position.get(last[-1], -2) + 1:
            last.append(partition)
        else:
            found.append([partition])
    return found


def launch_partitions(
    engine: Engine,
    keys: Sequence[dg.AssetKey],
    partitions: dict[dg.AssetKey, list[str]],
    reasons: dict[dg.AssetKey, str],
) -> tuple[list[str], dict[dg.AssetKey, AssetOutcome]]:
    """Build ``partitions`` of each of ``keys``; the runs and one row per asset (:func:`merged`)."""
    if any(per_run(engine.graph, k) > 1 for k in keys):  # in runs of several partitions
        run_ids, each = launch_batched(engine, keys, partitions, reasons)
    else:
        run_ids, each = launch_each(engine, keys, partitions, reasons)
    found = {key: merged(key, outcomes) for key, outcomes in each.items() if outcomes}
    for key in keys:
        if key not in found:  # nothing to build of it: no partition yet (an empty landing folder)
            found[key] = AssetOutcome(
                key.to_user_string(), engine.kind(key), "not run", detail="no partition to build (none found yet)"
            )
    return run_ids, found


def launch_each(
    engine: Engine,
    keys: Sequence[dg.AssetKey],
    partitions: dict[dg.AssetKey, list[str]],
    reasons: dict[dg.AssetKey, str],
) -> tuple[list[str], dict[dg.AssetKey, list[tuple[str, AssetOutcome]]]]:
    """A run per partition key, with every asset that needs it, oldest first; each partition's outcome."""
    import logging

    by_partition: dict[str, list[dg.AssetKey]] = {}
    for key in keys:
        for partition in partitions.get(key, []):
            by_partition.setdefault(partition, []).append(key)
    log = logging.getLogger("slipway.progress")
    run_ids: list[str] = []
    each: dict[dg.AssetKey, list[tuple[str, AssetOutcome]]] = {}
    record = engine.record()  # the definition's order: oldest window first
    order = {p: i for key in keys for i, p in enumerate(record.partitions(key).keys()) if p in by_partition}
    for index, partition in enumerate(sorted(by_partition, key=lambda p: (order.get(p, 0), p)), 1):
        log.info(f"partition {partition} ({index}/{len(by_partition)})")
        run_id, built = engine.launch(by_partition[partition], reasons, partition=partition)
        run_ids.append(run_id)
        for key, outcome in built.items():
            each.setdefault(key, []).append((partition, outcome))
        if any(o.status == "interrupted" for o in built.values()):
            break  # Ctrl-C: the partitions after it are left for the next run
    return run_ids, each


def launch_batched(
    engine: Engine,
    keys: Sequence[dg.AssetKey],
    partitions: dict[dg.AssetKey, list[str]],
    reasons: dict[dg.AssetKey, str],
) -> tuple[list[str], dict[dg.AssetKey, list[tuple[str, AssetOutcome]]]]:
    """Build ``partitions`` of each of ``keys``, upstream first, in runs of ranges; each partition's outcome."""
    import logging

    log = logging.getLogger("slipway.progress")
    level = {k: i for i, ks in enumerate(engine.graph.toposorted_asset_keys_by_level) for k in ks}
    record = engine.record()
    run_ids: list[str] = []
    each: dict[dg.AssetKey, list[tuple[str, AssetOutcome]]] = {}
    unbuilt: dict[dg.AssetKey, dict[str, str]] = {}  # each partition not built here, and how it ended
    ordered = sorted(keys, key=lambda k: (level.get(k, 0), k.to_user_string()))
    for position, key in enumerate(ordered):
        order = record.partitions(key).keys()
        wanted = set(partitions.get(key, ()))
        todo = [p for p in order if p in wanted]
        found, ended = each.setdefault(key, []), unbuilt.setdefault(key, {})
        for partition, why in _blocked(engine, record, key, todo, unbuilt).items():
            blocked = AssetOutcome(key.to_user_string(), engine.kind(key), "blocked", detail=why, reason=reasons[key])
            found.append((partition, blocked))
            ended[partition] = "blocked"
        runs = chunks(order, [p for p in todo if p not in ended], per_run(engine.graph, key))
        for index, run in enumerate(runs, 1):
            span = run[0] if len(run) == 1 else f"{run[0]} … {run[-1]}"
            log.info(f"{key.to_user_string()}: partition{'s' if len(run) > 1 else ''} {span} ({index}/{len(runs)})")
            if len(run) == 1:
                run_id, built = engine.launch([key], reasons, partition=run[0])
                outcomes = [(run[0], built[key])]
            else:
                run_id, built = engine.launch([key], reasons, span=(run[0], run[-1]))
                outcomes = split(engine, run_id, key, run, built[key])
            run_ids.append(run_id)
            found += outcomes
            ended.update({p: o.status for p, o in outcomes if o.status in UNBUILT})
            if built[key].status == "interrupted":  # Ctrl-C: what is left is for the next run
                not_started = {key: [p for rest in runs[index:] for p in rest]}
                for later in ordered[position + 1 :]:
                    left = set(partitions.get(later, ()))
                    not_started[later] = [p for p in record.partitions(later).keys() if p in left]
                for which, left_over in not_started.items():
                    stopped = AssetOutcome(which.to_user_string(), engine.kind(which), "not run", reason=reasons[which])
                    stopped.detail = "the command was interrupted before it started"
                    each.setdefault(which, []).extend((p, stopped) for p in left_over)
                return run_ids, each
    return run_ids, each


def _blocked(
    engine: Engine, record: Any, key: dg.AssetKey, todo: list[str], unbuilt: dict[dg.AssetKey, dict[str, str]]
) -> dict[str, str]:
    """The partitions of ``todo`` that read a partition not built in this command, and which (``web/e[d] failed``)."""
    found = {}
    parents = sorted(engine.graph.get(key).parent_keys & unbuilt.keys(), key=lambda k: k.to_user_string())
    for partition in todo:
        for parent in parents:
            bad = [p for p in record.partitions(key).window(parent, partition) if p in unbuilt[parent]]
            if bad:
                found[partition] = f"{parent.to_user_string()}[{bad[-1]}] {unbuilt[parent][bad[-1]]}"
                break
    return found


def merged(key: dg.AssetKey, found: list[tuple[str, AssetOutcome]]) -> AssetOutcome:
    """One row for a partitioned asset built over several runs: how many partitions, which failed and why."""
    first = found[0][1]
    built = [p for p, o in found if o.status in ("built", "reused")]
    failed = [(p, o) for p, o in found if o.status not in ("built", "reused")]
    span = built[0] if len(built) == 1 else f"{built[0]} … {built[-1]}" if built else ""
    outcome = AssetOutcome(
        key.to_user_string(),
        first.kind,
        failed[0][1].status if failed else "built",
        seconds=sum(o.seconds or 0.0 for _, o in found),
        dagster_run_id=found[-1][1].dagster_run_id,
    )
    # The reason said per partition (``3 of 10 partitions: 2 never built, … (a … c)``), as the why of what was built.
    why = re.sub(r"^\d+ of \d+ partitions: (.*) \([^()]*\)$", r"\1", first.reason)
    why = ", ".join(re.sub(r"^\d+ ", "", part) for part in why.split(", ")) if why else why
    parts = [f"{len(built)} partition{'s' if len(built) != 1 else ''} built ({span})"] if built else []
    if parts and why:
        parts[0] += f": {why}"
    if failed:
        partition, bad = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        detail = bad.detail.removeprefix(bad.status).lstrip(":; ")  # "interrupted; …" said once
        parts.append(f"partition {partition} {bad.status}{more}" + (f": {detail}" if detail else ""))
    outcome.detail = "; ".join(parts)
    return outcome


def split(
    engine: Engine, run_id: str, key: dg.AssetKey, run: list[str], whole: AssetOutcome
) -> list[tuple[str, AssetOutcome]]:
    """Each partition's outcome in run ``run_id`` over ``run``: built (its materialization) or not, and why.

    A partition not built says its failed blocking checks, else its line of the step's error
    (``partition k: why``), else how the run ended (interrupted, say).
    """
    kinds = {
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        dg.DagsterEventType.STEP_FAILURE,
    }
    built: dict[str, Any] = {}
    checks: dict[str, list[str]] = {}
    lines: dict[str, str] = {}  # each failed partition's line of the step's error
    for entry in engine.instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            lines.update(_partition_lines(event.step_failure_data))
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            if event.asset_key == key:
                built[event.partition or ""] = event.step_materialization_data.materialization
        else:
            data = event.asset_check_evaluation_data
            if data.asset_key == key and not data.passed:
                checks.setdefault(data.partition or "", []).append(events.check_label(engine.graph, data))
    found = []
    share = (whole.seconds or 0.0) / len(run)
    for partition in run:
        outcome = AssetOutcome(key.to_user_string(), whole.kind, "failed", seconds=share, reason=whole.reason)
        outcome.dagster_run_id = run_id
        if partition in built:
            events.materialized(outcome, built[partition], run_id)
        else:
            outcome.status = whole.status if whole.status in ("interrupted", "failed") else "failed"
            outcome.detail = lines.get(partition, whole.detail.splitlines()[0] if whole.detail else "")
        if checks.get(partition):
            events.with_checks(outcome, checks[partition], outcome.detail if partition in built else None)
        found.append((partition, outcome))
    return found


def _partition_lines(data: Any) -> dict[str, str]:
    """``{k: why}`` from a step error's lines ``partition k: why`` (:func:`assets.data.batches.build_partitions`)."""
    error = data.error
    if error is not None and error.cause is not None:  # the user's exception, wrapped by Dagster once
        error = error.cause
    found = {}
    for line in (getattr(error, "message", "") or "").splitlines():
        head, sep, rest = line.partition(": ")
        if sep and head.startswith("partition "):
            found[head.removeprefix("partition ")] = rest
    return found
