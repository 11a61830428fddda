"""``slipway serve MODEL`` and ``slipway predict MODEL``: the version an alias holds, online and on a file.

``MODEL`` is ``pipeline/model`` (as in the YAML) or the registered name ``pipeline.model``,
optionally with ``@alias`` (default: the model's ``serve.alias``, else its promote alias).
The model's ``serve:`` block (canary, shadow) is read from the definitions when they are found.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

from resources.errors import SlipwayError


class ServeError(SlipwayError):
    """A serve or predict request that cannot be carried out (said in one line)."""


def parse_model(text: str) -> tuple[str, str | None]:
    """``shop/clf@champion`` -> (``shop.clf``, ``champion``); ``shop.clf`` -> (``shop.clf``, None)."""
    name, _, alias = text.partition("@")
    name = name.replace("/", ".", 1) if "/" in name else name
    if not name or "." not in name:
        raise ServeError(f"{text!r}: expected PIPELINE/MODEL[@ALIAS], e.g. churn/churn_classifier@champion")
    return name, alias or None


def routes_for(name: str, alias: str | None, defs_dir: Path | None) -> Any:
    """The routes of ``name``: its ``serve:`` block when its definition is found, else the alias alone."""
    from assets.serve.server import Routes

    pipeline, _, model = name.partition(".")
    if defs_dir is not None and defs_dir.is_dir():
        from assets.spec.loader import load_pipelines

        for p in load_pipelines(defs_dir):
            spec = p.spec.models.get(model) if p.spec.name == pipeline else None
            if spec is not None:
                return Routes.of(spec.serve, spec.promote.alias, alias)
    return Routes(alias or "champion")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another with --port") from exc
    sock.listen(128)
    return sock


class ServedLog:
    """Each answered (and shadow) request as a JSON line in ``path``: time, alias, version, status, latency."""

    def __init__(self, path: Path) -> None:
        """Appends to ``path`` (its folder is created); kept open, a line written at a time."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._out = path.open("a", buffering=1)  # line-buffered: a line is in the file once written
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        """Add one line."""
        line = json.dumps(entry) + "\n"
        with self._lock:
            self._out.write(line)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._out.close()


def quiet_for_requests() -> None:
    """Ignore every warning from here on: one filter, where start-up left two dozen.

    scikit-learn re-applies the process's warning filters in each task of its ``Parallel`` (each
    tree of a forest, on every request), so each filter costs on the request path: with the 24
    filters Dagster, MLflow and Slipway's start-up leave, a 50-tree forest answered ~15 % slower
    than in ``mlflow models serve`` (py-spy: ``filterwarnings`` under ``_FuncWrapper.__call__``).
    A server's warnings would repeat per request anyway; what it has to say it logs.
    """
    import warnings

    warnings.resetwarnings()
    warnings.simplefilter("ignore")


def serve(
    target: str,
    alias: str | None,
    host: str,
    port: int,
    stack_name: str | None,
    defs_dir: Path | None,
    poll_seconds: float = 5.0,
    max_bytes: int | None = None,
    say: Any = print,
    flush_seconds: float = 5.0,
) -> int:
    """Serve ``target`` until interrupted; the version that answers follows its alias."""
    import uvicorn

    from assets.serve.server import DEFAULT_MAX_BYTES, Follower, Router
    from assets.serve.shadow import ShadowComparison
    from assets.serve.traffic import TrafficLog
    from resources.paths import slipway_home
    from stacks import load_stack
    from stacks.build import build_resources

    name, wanted = parse_model(target)
    routes = routes_for(name, alias or wanted, defs_dir)
    # Swaps, models that do not load, a registry that is down: one timestamped line each.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    served_logger = logging.getLogger("slipway.serve")
    served_logger.addHandler(handler)
    served_logger.setLevel(logging.INFO)
    served_logger.propagate = False
    resources = build_resources(load_stack(stack_name).stack)
    sock = listen(host, port)
    log = ServedLog(slipway_home() / "served" / f"{name}.jsonl")
    shadow = ShadowComparison(resources["experiment_tracker"], name) if routes.shadow else None
    traffic = TrafficLog(resources["io_manager"], name, flush_seconds=flush_seconds, shadow=shadow)
    router = Router(name, routes, max_bytes or DEFAULT_MAX_BYTES, record=log.append, traffic=traffic)
    follower = Follower(router, resources["model_registry"], resources.get("alerter"), poll_seconds)
    follower.refresh()
    loaded = router.slots.get(routes.alias)
    extra = f", canary @{routes.canary[0]} {routes.canary[1]:g}%" if routes.canary else ""
    extra += f", shadow @{routes.shadow}" if routes.shadow else ""
    if loaded is None:
        say(f"not ready: {router.not_ready()['message']}; /ping answers 503 until a version takes it")
    else:
        say(f"serving {name}@{routes.alias} v{loaded.version}{extra}")
    say(f"  http://{host}:{port}/invocations  (the alias {routes.alias} is read every {poll_seconds:g} s)")
    say(f"  served rows: artifact store {'/'.join(traffic.key)}; requests: {log.path}")
    follower.start()
    traffic.start()

    def stopping() -> None:
        follower.stop()
        traffic.stop()  # what was answered is kept, up to the last request
        if shadow is not None:
            shadow.close()
        log.close()

    router.on_shutdown = stopping
    quiet_for_requests()
    # What is loaded now (Dagster, MLflow, the model) lives until exit: kept out of every later
    # collection, so that the garbage collector's full passes do not walk it during requests.
    gc.collect()
    gc.freeze()
    try:
        config = uvicorn.Config(router, log_level="warning", lifespan="on", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def predict(
    target: str,
    input_path: Path,
    output_path: Path | None,
    stack_name: str | None,
    chunk_rows: int = 100_000,
    defs_dir: Path | None = None,
) -> tuple[Path, str, int]:
    """Score ``input_path`` (CSV or Parquet) with the version ``target``'s alias holds; the output, version, rows.

    The alias defaults as `slipway serve`'s does (the model's ``serve.alias``, else its promote
    alias, else ``champion``). Every problem with the files is one :class:`ServeError` line.
    """
    import tempfile

    import pyarrow.parquet as pq

    from assets.serve.predictions import holder, score_file
    from stacks import load_stack
    from stacks.build import build_resources

    name, alias = parse_model(target)
    alias = routes_for(name, alias, defs_dir).alias
    if not input_path.is_file():
        raise ServeError(f"{input_path}: no such file")
    out = output_path or input_path.with_name(f"{input_path.stem}.predictions{input_path.suffix}")
    if not out.parent.is_dir():
        raise ServeError(f"{out}: its folder does not exist")
    registry = build_resources(load_stack(stack_name).stack)["model_registry"]
    version = holder(registry, name, alias)
    estimator = registry.load(name, version)
    with tempfile.TemporaryDirectory(prefix="slipway-predict-") as tmp:
        table = input_path
        if input_path.suffix.lower() != ".parquet":
            table = Path(tmp) / "input.parquet"
            _csv_to_parquet(input_path, table)
        else:
            try:
                pq.ParquetFile(table)
            except Exception as exc:
                raise ServeError(f"{input_path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from exc
        scored, rows = score_file(table, estimator, "prediction", chunk_rows)
        try:
            if out.suffix.lower() == ".parquet":
                shutil.move(scored, out)
            else:
                import pyarrow.csv as pacsv

                source = pq.ParquetFile(scored)
                with pacsv.CSVWriter(out, source.schema_arrow) as writer:
                    for batch in source.iter_batches(batch_size=chunk_rows):
                        writer.write_batch(batch)
        except OSError as exc:
            raise ServeError(f"{out}: cannot write: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(scored.parent, ignore_errors=True)
    return out, version, rows


def _csv_to_parquet(source: Path, table: Path) -> None:
    """Stream a CSV file into Parquet, block by block.

    Whole numbers are read as floats: a column whose first block holds only whole numbers would
    otherwise fail on a later ``70.5``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        with pacsv.open_csv(source) as probe:
            schema = probe.schema
        types = {f.name: pa.float64() for f in schema if pa.types.is_integer(f.type)}
        with pacsv.open_csv(source, convert_options=pacsv.ConvertOptions(column_types=types)) as reader:
            with pq.ParquetWriter(table, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ServeError(f"{source}: cannot read as CSV: {str(exc).splitlines()[0]}") from exc
