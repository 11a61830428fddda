"""The ``slipway`` command. Commands parse arguments and call the function that does the work."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from definitions.cli import commands
from definitions.cli.processes import quiet_warnings
from resources.errors import SlipwayError, storage_problem
from resources.redact import redact


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
    validate.set_defaults(func=commands.cmd_validate)

    run = _command(sub, "run", "materialize pipelines; unchanged assets are reused", *everything)
    run.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="pipelines to run (default: all)")
    run.add_argument("--force", action="store_true", help="rebuild everything selected")
    run.set_defaults(func=commands.cmd_run)

    backfill = _command(
        sub, "backfill", "build the partitions of a dataset that are missing, failed or stale", *everything
    )
    backfill.add_argument("dataset", metavar="DATASET", help="a partitioned dataset, e.g. sales/orders")
    chosen = backfill.add_mutually_exclusive_group()
    chosen.add_argument("--partitions", nargs="+", metavar="KEY", help="these partitions only")
    chosen.add_argument("--from", dest="start", metavar="KEY", help="the first partition (default: the first)")
    backfill.add_argument("--to", dest="end", metavar="KEY", help="the last partition, included (default: the last)")
    backfill.add_argument(
        "--only",
        choices=["missing", "failed", "stale"],
        default="stale",
        help="which: never built, failed, or stale for any reason (default: %(default)s)",
    )
    backfill.set_defaults(func=commands.cmd_backfill)

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
    plan.set_defaults(func=commands.cmd_plan)

    repro = _command(
        sub,
        "repro",
        "rebuild a registered model from its recorded commit and data; compare params and metrics",
        *everything,
    )
    repro.add_argument(
        "target", metavar="MODEL@VERSION", help="e.g. churn.churn_classifier@3 or churn/churn_classifier@champion"
    )
    repro.set_defaults(func=commands.cmd_repro)

    dev = _command(sub, "dev", "Dagster UI and MLflow UI on the local stack", *everything)
    dev.add_argument("--port", type=int, default=3000, help="Dagster UI port (default: %(default)s)")
    dev.add_argument(
        "--mlflow-port",
        type=int,
        default=None,
        help="MLflow UI port (default: the port of the stack's experiment_tracker.ui_url, 5000 on the local stack)",
    )
    dev.set_defaults(func=commands.cmd_dev)

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
    serve.set_defaults(func=commands.cmd_serve)

    predict = _command(
        sub, "predict", "score a CSV or Parquet file with the version a model's alias holds", *everything
    )
    predict.add_argument(
        "model", metavar="MODEL[@ALIAS]", help="e.g. churn/churn_classifier@champion (default alias: as slipway serve)"
    )
    predict.add_argument("--input", type=Path, required=True, help="CSV or Parquet file to score")
    predict.add_argument("--output", type=Path, default=None, help="where to write it (default: INPUT.predictions.EXT)")
    predict.set_defaults(func=commands.cmd_predict)

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
    demo_drift.set_defaults(func=commands.cmd_demo_drift)

    stack = _command(sub, "stack", "inspect stacks")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True)
    show = _command(stack_sub, "show", "the resolved stack and where each value came from", "verbose", "stack")
    show.add_argument("name", nargs="?", help="stack name (default: the active stack)")
    show.set_defaults(func=commands.cmd_stack_show)
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
        commands.silence_stdout()
    try:
        sys.stderr.flush()
    except BrokenPipeError:  # the reader has gone too (Ctrl-C on `slipway dev 2>&1 | cat`)
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
