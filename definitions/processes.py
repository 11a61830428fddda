"""Stop every process a command started, including the ones that escaped or were orphaned.

``dagster dev`` and ``mlflow server`` start workers of their own: Dagster a code server, a
gRPC server, the webserver and the daemon; MLflow uvicorn and a job runner that starts
huey consumers. Signalling the two servers (or their process groups) misses any worker
that outlives its parent or leaves the group, and an orphan is re-parented to init, out
of reach. So the command becomes a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``):
orphans below it are re-parented to it instead, every process it started stays its
descendant until it is reaped, and stopping them is a walk over the process table by
parent pid (``/proc``; ``ps`` where there is none, without the adoption of orphans).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from resources.errors import SlipwayError

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
PROC = Path("/proc")


class ProcessError(SlipwayError):
    """A process Slipway started could not be supervised or stopped."""


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); return False where the system cannot.

    Raises:
        ProcessError: Linux refused the request.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise ProcessError(f"cannot adopt orphaned child processes (prctl: {os.strerror(error)})")
    return True


def _table_from_proc() -> list[tuple[int, int, str]]:
    table = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended between the listing and the read
            continue
        # Field 2, the command name, may hold spaces and parentheses: split after the last ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        table.append((int(entry.name), int(ppid), state))
    return table


def _table_from_ps() -> list[tuple[int, int, str]]:
    ps = subprocess.Popen(["ps", "-A", "-o", "pid=,ppid=,stat="], stdout=subprocess.PIPE, text=True)
    out, _ = ps.communicate()
    rows = (line.split()[:3] for line in out.splitlines())
    # ps lists itself: leave it out, or a walk below this process would never come up empty.
    return [(int(pid), int(ppid), state) for pid, ppid, state in rows if int(pid) != ps.pid]


def parents(use_proc: bool | None = None) -> dict[int, int]:
    """Parent pid of every live process; zombies (only waiting to be reaped) left out.

    Args:
        use_proc: Read ``/proc`` (True) or ``ps`` (False); default: ``/proc`` where it exists.
    """
    use_proc = PROC.is_dir() if use_proc is None else use_proc
    table = _table_from_proc() if use_proc else _table_from_ps()
    return {pid: ppid for pid, ppid, state in table if not state.startswith("Z")}


def descendants(root: int | None = None, table: dict[int, int] | None = None) -> set[int]:
    """Pids of every live process below ``root`` (default: this process)."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for pid, ppid in (parents() if table is None else table).items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _reap() -> None:
    """Collect every child that has exited (adopted orphans included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children left
            return
        if pid == 0:
            return


def _send(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # ended since the walk
            pass


def stop_all(grace: float = 5.0, poll: float = 0.05) -> int:
    """Stop every descendant of this process; return how many there were.

    The direct children (the servers) get SIGTERM first, so they can stop their own
    workers in order; after ``grace / 2`` seconds every remaining descendant gets SIGTERM
    too, and after ``grace`` seconds SIGKILL. This process reaps its exited children only
    before a walk, never between a walk and the signals sent from it, so none of their
    pids can be taken by an unrelated process in between.

    Args:
        grace: Seconds before SIGKILL.
        poll: Seconds between two walks.

    Raises:
        ProcessError: Processes survived SIGKILL for 5 seconds.
    """
    me, start = os.getpid(), time.monotonic()
    termed: set[int] = set()
    seen: set[int] = set()
    while True:
        _reap()
        table = parents()
        alive = descendants(me, table)
        seen |= alive
        elapsed = time.monotonic() - start
        if not alive:
            return len(seen)
        if elapsed >= grace + 5:
            raise ProcessError(f"processes {sorted(alive)} survived SIGKILL; stop them by hand")
        if elapsed >= grace:
            _send(alive, signal.SIGKILL)
        else:
            due = alive if elapsed >= grace / 2 else {pid for pid in alive if table.get(pid) == me}
            _send(due - termed, signal.SIGTERM)
            termed |= due
        time.sleep(poll)
