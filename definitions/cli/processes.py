"""The processes a command starts: what they print, and stopping every one of them.

Printing: third-party warnings a user cannot act on are ignored in this process and, through
``PYTHONWARNINGS``, in every process it starts (:func:`quiet_warnings`); the servers' output is
copied without colour codes where it does not reach a terminal, or ``NO_COLOR`` is set
(:func:`relay_without_colours`).

Stopping: every process a command started, including the ones that escaped or were orphaned.

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

import builtins
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, TextIO

from resources.errors import SlipwayError

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
PROC = Path("/proc")


class ProcessError(SlipwayError):
    """A process Slipway started could not be supervised or stopped."""


# Warnings of the libraries Slipway runs that a user cannot act on: (how the text begins, a
# built-in class it is an instance of, the module it is attributed to). PYTHONWARNINGS, which
# carries them to the processes Slipway starts, takes a literal prefix without ':' or ',' and
# only a built-in class; the module is matched exactly, so the same warning raised from the
# user's own code (their call of a beta API, say) is still shown.
#
# Most are silenced at their source already (urllib3's by requests, the BetaWarnings by Dagster
# and Slipway), but by filters set inside `warnings.catch_warnings()`, which is not thread-safe:
# a thread leaving that block puts back the list it found, dropping what another thread added
# meanwhile, and threads do run side by side here (MLflow's warm-up beside Dagster's loading,
# scikit-learn's workers, which reset the filters). Filters set before any thread starts are in
# every list put back.
THIRD_PARTY_WARNINGS: tuple[tuple[str, str, str], ...] = (
    # On every model with an integer column: Slipway infers the signature from the training
    # rows, and nothing in a definition changes it.
    ("Hint", "UserWarning", "mlflow.types.utils"),
    # MLflow's server imports Starlette's deprecated WSGI middleware.
    ("starlette.middleware.wsgi is deprecated", "Warning", "mlflow.server.fastapi_app"),
    # urllib3 without PySocks, when requests is imported (a SOCKS proxy would still fail, saying so).
    ("SOCKS support in urllib3 requires", "Warning", "urllib3.contrib.socks"),
    # Dagster's BetaWarnings for the beta APIs that Dagster's component loading and Slipway
    # use on purpose (data versions, the automation sensor), each silenced where it is used.
    ("Class `LocalFileCodeReference`", "Warning", "dagster.components.component.component"),
    ("Class `CodeReferencesMetadataValue`", "Warning", "dagster.components.core.defs_module"),
    (
        "Parameter `execution_type` of function `AssetsDefinition.__init__`",
        "Warning",
        "dagster._core.definitions.assets.definition.assets_definition",
    ),
    ("Parameter `data_version` of initializer `Output.__init__`", "Warning", "assets.data.outputs"),
    (
        "Parameter `use_user_code_server` of initializer `AutomationConditionSensorDefinition.__init__`",
        "Warning",
        "assets.automation.sensors",
    ),
    ("Parameter `include_sources` of function `AssetSelection.all`", "Warning", "assets.automation.sensors"),
)


def quiet_warnings() -> None:
    """Ignore :data:`THIRD_PARTY_WARNINGS` here and in every process started from here on.

    Call it before any thread starts. The user's own ``-W`` or ``PYTHONWARNINGS`` keeps the
    last word: here its filters stay in front of these, and in a child its entries come after
    ours (later entries win).
    """
    ours = ",".join(f"ignore:{text}:{category}:{module}" for text, category, module in THIRD_PARTY_WARNINGS)
    theirs = os.environ.get("PYTHONWARNINGS", "")
    if not theirs.startswith(ours):  # a slipway started by slipway has them already
        os.environ["PYTHONWARNINGS"] = f"{ours},{theirs}" if theirs else ours
    for text, category, module in THIRD_PARTY_WARNINGS:
        # As PYTHONWARNINGS reads them: the text a literal prefix (any case), the module exact.
        pattern, kind = re.escape(module) + r"\Z", getattr(builtins, category)
        warnings.filterwarnings("ignore", re.escape(text), kind, pattern, append=bool(sys.warnoptions))


def wants_plain_text(stream: TextIO) -> bool:
    """Whether what is written to ``stream`` must carry no colour codes: it is no terminal, or ``NO_COLOR`` is set."""
    return bool(os.environ.get("NO_COLOR")) or not stream.isatty()


# Control sequences: CSI (colours, cursor movement) and OSC (titles, hyperlinks).
_CONTROL = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def relay_without_colours(target: BinaryIO) -> tuple[int, threading.Thread]:
    """A pipe whose lines are copied to ``target`` without control sequences.

    Dagster's and MLflow's log lines carry colour codes whatever they are written to. Give
    the returned write end to the processes started (and close it here); the thread ends
    when every process holding the pipe has closed it.
    """
    read, write = os.pipe()

    def copy() -> None:
        reader_gone = False
        with open(read, "rb") as source:
            for line in source:
                if reader_gone:  # keep reading, so that no server blocks on a full pipe
                    continue
                try:
                    target.write(_CONTROL.sub(b"", line))
                    target.flush()
                except (OSError, ValueError):  # `slipway dev | head`, a terminal gone, or the stream closed
                    reader_gone = True

    thread = threading.Thread(target=copy, name="slipway-relay", daemon=True)
    thread.start()
    return write, thread


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
