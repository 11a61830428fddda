"""How `slipway run` launches a run on each orchestrator of a stack (the orchestrator role's own way).

``in_process``: every step in the calling process. ``multiprocess``: each step in a process of
its own, which loads the code location from the module Dagster's code server loads
(``definitions.definitions:defs``), with the stack and definitions folder in its environment.
A ``k8s_job`` stack is launched by its Dagster deployment, not from the command line.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The code location a step process loads: the module and attribute the code server loads too.
CODE_LOCATION = ("definitions.definitions", "defs")


@dataclass
class Launch:
    """One run to launch: the job, the instance, which assets, and what the run carries."""

    job: Any  # the code location's implicit asset job
    instance: Any
    keys: Sequence[Any]
    run_config: Mapping[str, Any]
    tags: Mapping[str, str]
    #: Environment a step process needs to load the same code location (stack, definitions folder).
    env: Mapping[str, str | None] = field(default_factory=dict)


def in_process(launch: Launch) -> Any:
    """Every step in this process; the result is Dagster's."""
    return launch.job.execute_in_process(
        instance=launch.instance,
        asset_selection=list(launch.keys),
        raise_on_error=False,
        run_config=dict(launch.run_config),
        tags=dict(launch.tags),
    )


def in_step_processes(launch: Launch) -> Any:
    """Each step in a process of its own, which imports the code location anew."""
    import dagster as dg

    from resources.dagster_private import reconstructable_job

    with _environment(launch.env):
        _fork_server_of_this_environment()
        return dg.execute_job(
            reconstructable_job(*CODE_LOCATION, launch.job.name),
            instance=launch.instance,
            asset_selection=list(launch.keys),
            raise_on_error=False,
            run_config=dict(launch.run_config),
            tags=dict(launch.tags),
        )


#: The environment (and working folder) the multiprocessing fork server was started in, if it was.
_fork_server_started_in: dict[str, str] | None = None


def _fork_server_of_this_environment() -> None:
    """Stop the fork server when this launch's environment is not the one it was started in.

    The multiprocess executor forks its step processes from one server per process
    (:data:`stacks.orchestrators.PRELOADED`), which keeps the environment and working folder it
    was started with: a later launch from the same process with another ``SLIPWAY_HOME``, stack
    or definitions folder (a program or test calling `slipway run` twice) would have its steps
    read the first one's. Stopped, the executor starts a new one with the current environment.
    """
    global _fork_server_started_in
    from multiprocessing import forkserver

    from resources.mlflow_client import OWN_ENVIRONMENT

    now = {k: v for k, v in os.environ.items() if k not in OWN_ENVIRONMENT}
    now |= {"\0cwd": os.getcwd(), "\0path": "\0".join(sys.path)}
    if _fork_server_started_in is not None and _fork_server_started_in != now:
        forkserver._forkserver._stop()  # type: ignore[attr-defined]  # CPython's own, since 3.8
    _fork_server_started_in = now


@contextlib.contextmanager
def _environment(wanted: Mapping[str, str | None]) -> Iterator[None]:
    """``wanted`` set for the step processes started inside (None: left as it is), then put back."""
    before = {name: os.environ.get(name) for name in wanted}
    try:
        for name, value in wanted.items():
            if value is not None:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
