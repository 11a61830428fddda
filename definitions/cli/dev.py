"""``slipway dev``: the Dagster UI and the MLflow UI on the local stack, stopped together.

Stopping is :func:`definitions.cli.processes.stop_all`: every process started below this one,
the servers' own workers included, is stopped on Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO
from urllib.parse import urlparse

from definitions.cli.processes import ProcessError, become_subreaper, relay_without_colours, stop_all, wants_plain_text
from resources.errors import StackError
from resources.paths import PROJECT_ROOT
from stacks import LoadedStack, load_stack, provenance

UI_URL_VAR = "SLIPWAY_EXPERIMENT_TRACKER__UI_URL"
DEFAULT_MLFLOW_PORT = 5000
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def prepare(stack_name: str | None = None) -> LoadedStack:
    """Load the stack and point ``DAGSTER_HOME`` at its instance (written if missing)."""
    from stacks.build import prepare_instance

    loaded = load_stack(stack_name)
    home = prepare_instance(loaded.stack)
    _can_write(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return loaded


# What the UI's daemon and MLflow's server write before anyone clicks (heartbeats, a journal).
_PROBE_BYTES = 256 * 1024


def _can_write(folder: Path) -> None:
    """Write (and remove) a scratch file in ``folder``: a full disk or a read-only home fails here, once.

    Started on such a home, the daemon would print a traceback per heartbeat instead; the
    ``OSError`` raised here is said in one line by the CLI (:func:`resources.errors.storage_problem`).
    """
    probe = folder / f".slipway-write-check.{os.getpid()}"
    try:
        with probe.open("wb") as stream:
            stream.write(b"\0" * _PROBE_BYTES)
            stream.flush()
            os.fsync(stream.fileno())
    finally:
        probe.unlink(missing_ok=True)


def _ui_url(loaded: LoadedStack) -> tuple[str, str | None, int | None]:
    """The stack's MLflow ``ui_url`` with its host and port."""
    url = loaded.stack.experiment_tracker.ui_url
    parsed = urlparse(url)
    try:
        return url, parsed.hostname, parsed.port
    except ValueError as exc:
        raise StackError(f"stack {loaded.name}: experiment_tracker.ui_url {url!r}: {exc}") from exc


def choose_mlflow_port(loaded: LoadedStack, given: int | None = None) -> int:
    """The MLflow UI port: ``given``, else the port of the stack's ``ui_url`` (else 5000)."""
    return given if given is not None else _ui_url(loaded)[2] or DEFAULT_MLFLOW_PORT


def link_target(loaded: LoadedStack, port: int) -> tuple[dict[str, str], str | None]:
    """Where runs launched from the UI link to: the environment for the servers, and a notice.

    Runs launched from the Dagster UI link to the MLflow UI served beside it, unless the
    user set the stack's ``ui_url`` through the environment themselves (an MLflow UI behind
    a proxy, say): theirs wins. The notice (None when all links agree) says which links
    point elsewhere than the MLflow UI served here.
    """
    url, host, url_port = _ui_url(loaded)
    served = f"http://127.0.0.1:{port}"
    same = host in _LOCAL_HOSTS and url_port == port
    source = provenance(loaded)["experiment_tracker.ui_url"]
    if source.startswith("env "):
        notice = None if same else f"runs launched from the Dagster UI link to {url} ({source}), not to {served}"
        return {}, notice
    notice = None if same else f"MLflow UI on port {port}: materializations recorded earlier link to {url}"
    return {UI_URL_VAR: served}, notice


def commands(loaded: LoadedStack, dagster_port: int, mlflow_port: int) -> list[list[str]]:
    """The server command lines: the two UIs, then one ``slipway serve`` per served model (:func:`served`).

    ``dg dev`` (not ``dagster dev -m definitions.definitions``) registers the code location
    under the dg project's name, the name ``dg`` and Dagster's components use for it: with
    the module's name instead, every load of the definitions warned about the mismatch.
    """
    bin_dir = Path(sys.executable).parent
    tracker = loaded.stack.experiment_tracker
    dagster = [
        str(bin_dir / "dg"),
        "dev",
        "--target-path",
        str(PROJECT_ROOT),
        "--port",
        str(dagster_port),
        "--host",
        "127.0.0.1",
    ]
    from resources.mlflow_store import store_uri

    mlflow = [
        str(bin_dir / "mlflow"),
        "server",
        "--backend-store-uri",
        store_uri(tracker.tracking_uri),  # a bare postgresql:// with the driver shipped
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
        "--workers",
        "1",
    ]
    if tracker.artifact_location:
        mlflow += ["--default-artifact-root", Path(tracker.artifact_location).as_uri()]
    return [dagster, mlflow, *served(loaded)]


def served(loaded: LoadedStack) -> list[list[str]]:
    """A ``slipway serve`` command line for each model that declares ``serve:``, when the stack's deployer is local."""
    deployer = loaded.stack.model_deployer
    if deployer.type != "local":
        return []
    from assets.serve.deploy import served_models
    from assets.spec.loader import load_pipelines
    from definitions.paths import defs_folder

    folder = defs_folder()
    slipway = str(Path(sys.executable).parent / "slipway")
    return [
        [slipway, "--defs", str(folder), "serve", name, "--host", deployer.host, "--port", str(deployer.port(index))]
        for index, name in enumerate(served_models(load_pipelines(folder)))
    ]


#: MLflow 3's server starts a job runner (eight more Python processes, ~1.8 GB more memory
#: measured with two workers) for GenAI features Slipway never asks for.
MLFLOW_WITHOUT_JOBS = ("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")


def _environment(loaded: LoadedStack, links: dict[str, str], dagster_port: int) -> dict[str, str]:
    from definitions.paths import DEFS_ENV, defs_folder
    from resources.links import DAGSTER_UI_VAR

    env = {**os.environ, **links}
    env["SLIPWAY_STACK"] = loaded.reference
    # The code location reads the definitions of the project `slipway dev` was started in.
    env[DEFS_ENV] = str(defs_folder())
    # Links to the Dagster UI (MLflow descriptions, alerts) from runs the UI launches point here.
    env.setdefault(DAGSTER_UI_VAR, f"http://127.0.0.1:{dagster_port}")
    env.setdefault(*MLFLOW_WITHOUT_JOBS)
    if sys.prefix != sys.base_prefix:
        # dg warns when the project's .venv is not the active one: it is, it runs slipway.
        env.setdefault("VIRTUAL_ENV", sys.prefix)
    return env


def _outputs(env: dict[str, str]) -> tuple[dict[str, int], list[threading.Thread]]:
    """Where the servers write: this process's stdout and stderr, each through a relay where it needs plain text.

    Dagster and MLflow colour their log lines whatever they write to; a relay drops the codes
    where the stream is no terminal or ``NO_COLOR`` is set.
    """
    outputs: dict[str, int] = {}
    relays: list[threading.Thread] = []
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        if wants_plain_text(stream):
            stream.flush()
            outputs[name], relay = relay_without_colours(stream.buffer)
            relays.append(relay)
    if relays:
        env["PYTHONUNBUFFERED"] = "1"  # a line reaches the relay when it is written, not when a buffer fills
    return outputs, relays


def _start(commands: list[list[str]], env: dict[str, str], outputs: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    procs = []
    out, err = outputs.get("stdout"), outputs.get("stderr")  # None: this process's own
    try:
        for cmd in commands:
            try:
                procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=err, start_new_session=True))
            except OSError as exc:
                raise ProcessError(f"cannot start {Path(cmd[0]).name}: {exc}") from exc
    finally:
        for fd in outputs.values():  # the servers hold the pipes now: each relay ends when they have all exited
            os.close(fd)
    return procs


def _label(cmd: list[str]) -> str:
    """A server's name in messages: ``dg dev``, ``mlflow server``, ``slipway serve shop.clf``."""
    return f"slipway serve {cmd[4]}" if cmd[3:4] == ["serve"] else f"{Path(cmd[0]).name} {cmd[1]}"


def _say(text: str, stream: TextIO | None = None) -> None:
    """Print a line of dev's own, flushed (the servers' lines reach the same stream beside it).

    Ctrl-C on ``slipway dev | cat`` ends the reader too: what is left to say then goes to
    /dev/null, and the stopping goes on.
    """
    stream = stream or sys.stdout
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def serve(loaded: LoadedStack, dagster_port: int = 3000, mlflow_port: int | None = None) -> int:
    """Start both UIs; return on Ctrl-C, SIGTERM or SIGHUP, or raise when a server exits.

    Either way every process started below this one is stopped before this returns.

    Raises:
        StackError: The stack is not a local one.
        ProcessError: A server exited on its own, or a process could not be stopped.
    """
    if loaded.stack.orchestrator.type != "in_process" or loaded.stack.experiment_tracker.type != "mlflow":
        # A deployment's UIs are its own (Dagster's chart, the MLflow server): nothing to serve here.
        raise StackError(
            f"stack {loaded.name}: `slipway dev` serves a local stack only (in_process orchestrator, mlflow tracker); "
            f"open the deployment's UIs instead"
        )
    port = choose_mlflow_port(loaded, mlflow_port)
    links, notice = link_target(loaded, port)
    # `mlflow server` would create a new database in place, beside any `slipway run` starting on
    # the same home: create it here, whole and under the schema lock, before the server starts.
    from resources.mlflow_client import create_store

    create_store(loaded.stack.experiment_tracker.tracking_uri)
    become_subreaper()
    requested: list[int] = []
    # Own handlers, set before the servers start: a signal ignored here (a background job
    # of a script ignores SIGINT) would stay ignored in them, and `dagster dev` maps
    # SIGTERM onto SIGINT's handler, so it would ignore SIGTERM too. Caught signals are
    # reset to their defaults in a child.
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda signum, frame: requested.append(signum)) for sig in stop_signals}
    cmds, procs = commands(loaded, dagster_port, port), []
    relays: list[threading.Thread] = []
    try:
        env = _environment(loaded, links, dagster_port)
        outputs, relays = _outputs(env)
        procs = _start(cmds, env, outputs)
        _say(f"Dagster UI: http://127.0.0.1:{dagster_port}   MLflow UI: http://127.0.0.1:{port}   (Ctrl-C stops all)")
        for cmd in cmds[2:]:
            _say(f"serving {cmd[4]} at http://{cmd[6]}:{cmd[8]}/invocations")
        if notice:
            _say(notice)
        while not requested and all(p.poll() is None for p in procs):
            time.sleep(0.25)
    finally:
        for sig in stop_signals:  # a second Ctrl-C must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        _say("stopping…", sys.stderr)
        started = time.monotonic()
        count = stop_all()
        relayed = time.monotonic() + 3
        for relay in relays:  # the servers' last lines before ours
            relay.join(timeout=max(0.0, relayed - time.monotonic()))
        _say(f"stopped {count} processes in {time.monotonic() - started:.1f}s", sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not requested:
        ended = [_label(c) for c, p in zip(cmds, procs, strict=True) if p.returncode is not None]
        raise ProcessError(f"{' and '.join(ended)} exited; everything stopped (its output is above)")
    return 0
