"""Runs of an earlier `slipway run` that died (killed, power cut) mid-run, and the pool slots they hold.

Called with this home's run lock held: no other `slipway run` from this home is alive, so its
runs left unfinished, and the model pool slots they claimed, are debris. Runs launched another
way (the UI, a sensor, another machine on a shared instance) are left alone.
"""

from __future__ import annotations

import socket
from typing import Any

import dagster as dg

from assets.automation.rebuild import UNFINISHED
from resources.dagster_private import free_pool_slots, pool_holders
from stacks import slipway_home

OWNER_TAG = "slipway/owner"


def owner_tags() -> dict[str, str]:
    """The tags that say a run is this home's (:func:`run_owner`)."""
    return {OWNER_TAG: run_owner()}


def run_owner() -> str:
    """Who launched a run: this host and ``SLIPWAY_HOME``, the scope of the run lock (``host:home``)."""
    return f"{socket.gethostname()}:{slipway_home()}"


def end_dead_runs(instance: Any) -> list[Any]:
    """Mark failed the runs of earlier `slipway run`s from this home that died (killed, power cut) mid-run.

    The caller holds this home's run lock and `slipway run` executes in its own process, so no
    run launched from this home can still be going. Left as STARTED, such a run would count as
    "in progress" for the rebuild rule and hold its assets back forever. Runs another machine
    (or home) launched on a shared instance are theirs: they may well be going.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED), tags={"slipway/command": "run"}))
    dead = [run for run in runs if launched_by_slipway_run(run)]
    for run in dead:
        instance.report_run_failed(run, "the `slipway run` that launched this run ended before it finished")
    return dead


def launched_by_slipway_run(run: Any) -> bool:
    """True for a run a `slipway run` from this home launched (a UI re-execution inherits its tags, not its process).

    A run without an owner tag is from before runs had one: a local instance, this home's.
    """
    return (
        run.tags.get("slipway/command") == "run"
        and "dagster/parent_run_id" not in run.tags
        and run.tags.get(OWNER_TAG, run_owner()) == run_owner()
    )


def free_dead_pool_slots(instance: Any) -> None:
    """Free model and sweep pool slots held by runs that can no longer release them.

    A `slipway run` killed mid-training leaves its slot claimed in the instance. The caller holds
    this home's run lock, so no other `slipway run` from this home is alive: a slot of such a run
    (or of a finished or unknown run) is debris. Slots of runs launched another way (the UI, a
    sensor, another machine on a shared instance) that are still going are left alone.
    """
    # A model's training slot, and its sweep's trial slots (a run killed among its trials).
    for run_id in pool_holders(instance, "slipway-model-") | pool_holders(instance, "slipway-sweep-"):
        record = instance.get_run_by_id(run_id)
        if record is None or record.is_finished or launched_by_slipway_run(record):
            free_pool_slots(instance, run_id)
