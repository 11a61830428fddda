"""The ``slipway`` command. Commands parse arguments and call the function that does the work."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from definitions.cli.processes import quiet_warnings
from resources.errors import SlipwayError, storage_problem
from resources.redact import redact


def emit(text: str) -> None:
    """Print to stdout, passwords redacted; if the reader has gone (``validate | head -1``), drop the rest quietly."""
    try:
        print(redact(text), flush=True)
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    # Point stdout at /dev/null so that later writes and the final flush do not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _WithoutLine:
    """A text stream that drops writes beginning with ``prefix`` and passes everything else on."""

    def __init__(self, stream: Any, prefix: str) -> None:
        self._stream, self._prefix = stream, prefix

    def write(self, text: str) -> int:
        return len(text) if text.startswith(self._prefix) else self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _validate(args: argparse.Namespace) -> int:
    from definitions.cli.validate import validate

    for line in validate(args.stack, args.defs):
        emit(line)
    return 0


def _run(args: argparse.Namespace) -> int:
    from definitions.cli.report import show_progress, summary
    from definitions.cli.runner import run

    # A run is a short batch process holding ~400,000 long-lived objects (Dagster, MLflow,
    # scikit-learn modules): at the default thresholds the cyclic GC collects over a thousand
    # times and costs ~0.9 s of a 10 s run, mostly while a background thread competes for
    # the GIL. Fewer, larger young collections keep cycles bounded at a fraction of the cost.
    gc.set_threshold(50_000, 20, 10)
    # Dagster writes this (with the SQL and 12,000 characters of parameters) to stderr when the
    # event log cannot be written; the failure itself is reported in one line by main().
    sys.stderr = _WithoutLine(sys.stderr, "Exception while writing logger call to event log")
    show_progress()
    report = run(args.pipelines, stack_name=args.stack, force=args.force, defs_dir=args.defs)
    emit(summary(report))
    if any(o.status == "interrupted" for o in report.outcomes):
        return 130  # as a shell reports a command stopped by Ctrl-C (128 + SIGINT)
    return 0 if report.ok else 1


def _plan(args: argparse.Namespace) -> int:
    from definitions.paths import defs_folder
    from definitions.plan.compare import plan
    from definitions.plan.report import as_json, as_markdown, as_table
    from resources.paths import PROJECT_ROOT
    from stacks.loader import STACKS_DIR

    folder = (args.defs or defs_folder()).resolve()
    # The stacks and lock file of the project the definitions belong to (<root>/definitions/defs),
    # else the installed Slipway's.
    root = folder.parents[1] if folder.parent.name == "definitions" else None
    stacks = root / "stacks" if root is not None and (root / "stacks").is_dir() else STACKS_DIR
    lock = root / "uv.lock" if root is not None and (root / "uv.lock").is_file() else PROJECT_ROOT / "uv.lock"
    found = plan(args.range, folder, stacks, lock)
    emit(as_json(found) if args.json else as_markdown(found) if args.markdown else as_table(found))
    if args.exit_code:
        return 2 if found.changed else 0
    return 0


def _repro(args: argparse.Namespace) -> int:
    from definitions.cli.repro import repro
    from definitions.paths import defs_folder

    found = repro(args.target, args.stack, (args.defs or defs_folder()).resolve(), say=lambda line: emit(f"  {line}"))
    for line in found.lines:
        emit(f"  {line}")
    for line in found.warnings:
        emit(f"warning: {line}")
    for line in found.mismatches:
        emit(f"differs: {line}")
    verdict = "reproduced: params and metrics match" if found.ok else "NOT reproduced"
    emit(f"{found.model} v{found.version}: {verdict}")
    return 0 if found.ok else 1


def _demo_drift(args: argparse.Namespace) -> int:
    from definitions.cli.demo import drift
    from definitions.paths import defs_folder

    landed = drift(
        args.pipeline,
        (args.defs or defs_folder()).resolve(),
        args.stack,
        rows=args.rows,
        shift=args.shift,
        say=lambda line: emit(f"  {line}"),
    )
    emit(f"landed a drifted batch of {landed.rows} rows for {landed.dataset}; who notices:")
    for line in landed.readers:
        emit(f"  {line}")
    if not any("retrains on" in line for line in landed.readers):
        emit(
            "no model reading it has a retrain policy: with `slipway dev` running, the datasets are rebuilt "
            "and nothing retrains by itself; `slipway run` retrains them now"
        )
    else:
        emit(
            "with `slipway dev` running, the automation sensor rebuilds the datasets below it, then "
            "slipway_retrain scores the drift and retrains by the policy: watch the model's asset page "
            "(Overview > Metadata > Plots: drift_score; Events: the drift_report link and a new materialization "
            "with retrain_trigger) and `slipway_retrain`'s ticks on the Automation page. "
            "Without it, `slipway run` rebuilds everything now."
        )
    return 0


def _dev(args: argparse.Namespace) -> int:
    from definitions.cli.dev import prepare, serve
    from definitions.paths import DEFS_ENV

    if args.defs is not None:
        # The code server loads definitions/definitions.py, which reads the folder from here.
        os.environ[DEFS_ENV] = str(args.defs.resolve())
    return serve(prepare(args.stack), args.port, args.mlflow_port)


def _serve(args: argparse.Namespace) -> int:
    from definitions.cli.serve import serve
    from definitions.paths import defs_folder

    try:
        defs = (args.defs or defs_folder()).resolve()
    except SlipwayError:  # outside a project: served without its serve: block
        defs = None
    max_bytes = int(args.max_request_mb * 1024 * 1024)
    return serve(args.model, args.alias, args.host, args.port, args.stack, defs, args.poll, max_bytes, say=emit)


def _predict(args: argparse.Namespace) -> int:
    from definitions.cli.serve import predict
    from definitions.paths import defs_folder

    try:
        defs = (args.defs or defs_folder()).resolve()
    except SlipwayError:  # outside a project: the alias defaults to champion
        defs = None
    out, version, rows = predict(args.model, args.input, args.output, args.stack, defs_dir=defs)
    emit(f"{rows} rows scored by v{version}: {out}")
    return 0


def _stack_show(args: argparse.Namespace) -> int:
    from stacks import load_stack, provenance
    from stacks.build import needs_lines

    loaded = load_stack(args.name or args.stack)
    sources = provenance(loaded)
    emit(f"stack {loaded.name} ({loaded.path})")
    for component, value in loaded.stack.model_dump().items():
        if isinstance(value, dict):
            emit(f"{component}:")
            for key, item in value.items():
                emit(f"  {key}: {item!r}  # {sources[f'{component}.{key}']}")
        else:
            emit(f"{component}: {value!r}  # {sources[component]}")
    for line in needs_lines(loaded.stack):
        emit(line)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting 1 like every other error (2 is `plan --exit-code`'s "changes")."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


# Options of `slipway` itself, accepted after a command as well (`slipway validate --stack k8s`).
_GLOBAL_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "verbose": (("--verbose", "-v"), {"action": "store_true", "help": "show tracebacks"}),
    "stack": (("--stack",), {"help": "stack name or file (default: $SLIPWAY_STACK or local)"}),
    "defs": (
        ("--defs",),
        {"type": Path, "help": "folder of pipeline definitions (default: definitions/defs of the project you are in)"},
    ),
}


def _global_options(*names: str) -> argparse.ArgumentParser:
    """``names`` of :data:`_GLOBAL_OPTIONS` for a command; one not given after it keeps its value from before it."""
    options = argparse.ArgumentParser(add_help=False)
    for name in names:
        flags, spec = _GLOBAL_OPTIONS[name]
        options.add_argument(*flags, **spec, default=argparse.SUPPRESS)
    return options


def _command(commands: Any, name: str, text: str, *options: str) -> argparse.ArgumentParser:
    """A command: ``text`` is its line in the list of commands and, as a sentence, the top of its own ``--help``."""
    description = text[:1].upper() + text[1:] + "."
    return commands.add_parser(name, help=text, description=description, parents=[_global_options(*options)])


def _positive(text: str) -> float:
    """A number above zero (argparse says which option when it is not)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return value


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``slipway``."""
    root = _Parser(prog="slipway", description="Declarative GitOps ML pipelines on Dagster and MLflow.")
    for flags, spec in _GLOBAL_OPTIONS.values():
        root.add_argument(*flags, **spec)
    sub = root.add_subparsers(dest="command", required=True)
    everything = ("verbose", "stack", "defs")

    validate = _command(sub, "validate", "load every definition and the stack; report errors as path:line", *everything)
    validate.set_defaults(func=_validate)

    run = _command(sub, "run", "materialize pipelines; unchanged assets are reused", *everything)
    run.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to run (default: all)")
    run.add_argument("--force", action="store_true", help="rebuild everything selected")
    run.set_defaults(func=_run)

    plan = _command(
        sub,
        "plan",
        "what a git change does: assets added/removed/changed and why, what goes stale, which models retrain",
        "verbose",
        "defs",
    )
    plan.add_argument(
        "range",
        nargs="?",
        metavar="BASE[..HEAD]",
        help="compare HEAD with the working tree (default), BASE with the working tree, or BASE with HEAD",
    )
    output = plan.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON (schema_version 1; see the README)")
    output.add_argument("--markdown", action="store_true", help="Markdown, for a pull-request comment")
    plan.add_argument("--exit-code", action="store_true", help="exit 0 when nothing changes, 2 when something does")
    plan.set_defaults(func=_plan)

    repro = _command(
        sub,
        "repro",
        "rebuild a registered model from its recorded commit and data; compare params and metrics",
        *everything,
    )
    repro.add_argument(
        "target", metavar="MODEL@VERSION", help="e.g. churn.churn_classifier@3 or churn/churn_classifier@champion"
    )
    repro.set_defaults(func=_repro)

    dev = _command(sub, "dev", "Dagster UI and MLflow UI on the local stack", *everything)
    dev.add_argument("--port", type=int, default=3000, help="Dagster UI port (default: %(default)s)")
    dev.add_argument(
        "--mlflow-port",
        type=int,
        default=None,
        help="MLflow UI port (default: the port of the stack's experiment_tracker.ui_url, 5000 on the local stack)",
    )
    dev.set_defaults(func=_dev)

    serve = _command(
        sub, "serve", "serve the version a model's alias holds over HTTP (MLflow's scoring protocol)", *everything
    )
    serve.add_argument(
        "model", metavar="MODEL[@ALIAS]", help="e.g. churn/churn_classifier or churn.churn_classifier@champion"
    )
    serve.add_argument(
        "--alias", default=None, help="the alias that answers (default: the model's serve.alias or promote alias)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=5001, help="port (default: %(default)s)")
    serve.add_argument(
        "--poll", type=_positive, default=5.0, help="seconds between reads of the aliases (default: %(default)s)"
    )
    serve.add_argument(
        "--max-request-mb", type=_positive, default=10.0, help="largest request body (default: %(default)s)"
    )
    serve.set_defaults(func=_serve)

    predict = _command(
        sub, "predict", "score a CSV or Parquet file with the version a model's alias holds", *everything
    )
    predict.add_argument(
        "model", metavar="MODEL[@ALIAS]", help="e.g. churn/churn_classifier@champion (default alias: as slipway serve)"
    )
    predict.add_argument("--input", type=Path, required=True, help="CSV or Parquet file to score")
    predict.add_argument("--output", type=Path, default=None, help="where to write it (default: INPUT.predictions.EXT)")
    predict.set_defaults(func=_predict)

    demo = _command(sub, "demo", "try things out on the examples")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True)
    demo_drift = _command(
        demo_sub,
        "drift",
        "land a drifted batch in a pipeline's landing data, to watch the sensors retrain a model",
        *everything,
    )
    demo_drift.add_argument("pipeline", metavar="PIPELINE", help="e.g. churn")
    demo_drift.add_argument("--rows", type=int, default=None, help="rows in the batch (default: as many as landed)")
    demo_drift.add_argument("--shift", type=float, default=1.0, help="how far distributions move (0-3; default 1)")
    demo_drift.set_defaults(func=_demo_drift)

    stack = _command(sub, "stack", "inspect stacks")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True)
    show = _command(stack_sub, "show", "the resolved stack and where each value came from", "verbose", "stack")
    show.add_argument("name", nargs="?", help="stack name (default: the active stack)")
    show.set_defaults(func=_stack_show)
    return root


# Errors shown before the rest are counted: a file that is wrong on every line is not printed whole.
MAX_ERROR_LINES = 50


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``slipway`` console script."""
    # Nothing is reported home: Dagster's instance config turns its telemetry off too.
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # A progress bar per artifact download (a champion's training rows) would cut into the progress lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Before any thread starts: see THIRD_PARTY_WARNINGS.
    quiet_warnings()
    args = parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SlipwayError as exc:
        if args.verbose:
            traceback.print_exc()
        lines = str(exc).splitlines()
        shown = lines if args.verbose else lines[:MAX_ERROR_LINES]
        for line in shown:
            print(f"error: {redact(line)}", file=sys.stderr)
        if len(lines) > len(shown):
            more = len(lines) - len(shown)
            print(f"error: ... and {more} more (`slipway --verbose` shows every one)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from stacks import slipway_home

        problem = storage_problem(exc, str(slipway_home()))
        if problem is None:
            raise
        if args.verbose:
            traceback.print_exc()
        print(f"error: {redact(problem)}", file=sys.stderr)
        return 1


def entry() -> None:
    """The console script: run :func:`main`, then exit without interpreter teardown.

    Tearing down the interpreter after a run (freeing Dagster's, MLflow's and scikit-learn's
    module graphs one object at a time) takes ~0.9 s and does nothing the OS does not do when
    the process ends. Exit handlers still run, and output is flushed first.
    """
    code = main()
    atexit._run_exitfuncs()
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    try:
        sys.stderr.flush()
    except BrokenPipeError:  # the reader has gone too (Ctrl-C on `slipway dev 2>&1 | cat`)
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
