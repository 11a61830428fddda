"""What each ``slipway`` command does with its parsed arguments: call the function that does the work, print its lines.

:func:`definitions.cli.main.parser` names these; every line printed goes through :func:`emit`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Any

from resources.errors import SlipwayError
from resources.redact import redact


def emit(text: str) -> None:
    """Print to stdout, passwords redacted; if the reader has gone (``validate | head -1``), drop the rest quietly."""
    try:
        print(redact(text), flush=True)
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that later writes and the final flush do not fail again."""
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


def cmd_validate(args: argparse.Namespace) -> int:
    """`slipway validate`: every definition and the stack loaded, errors as path:line."""
    from definitions.cli.validate import validate

    for line in validate(args.stack, args.defs):
        emit(line)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`slipway run`: materialize what is out of date, then the summary."""
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


def cmd_backfill(args: argparse.Namespace) -> int:
    """`slipway backfill`: build the partitions of a dataset that need it, then the summary."""
    from definitions.cli.backfill import backfill
    from definitions.cli.report import show_progress, summary

    gc.set_threshold(50_000, 20, 10)  # as `slipway run`
    sys.stderr = _WithoutLine(sys.stderr, "Exception while writing logger call to event log")
    show_progress()
    report, _ = backfill(
        args.dataset,
        stack_name=args.stack,
        defs_dir=args.defs,
        start=args.start,
        end=args.end,
        partitions=args.partitions or (),
        wanted=args.only,
        say=emit,
    )
    if report.outcomes:
        emit(summary(report))
    if any(o.status == "interrupted" for o in report.outcomes):
        return 130
    return 0 if report.ok else 1


def cmd_plan(args: argparse.Namespace) -> int:
    """`slipway plan`: what a git change rebuilds, as a table, JSON or Markdown."""
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


def cmd_repro(args: argparse.Namespace) -> int:
    """`slipway repro MODEL@VERSION`: rebuild a registered model and compare."""
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


def cmd_demo_drift(args: argparse.Namespace) -> int:
    """`slipway demo drift PIPELINE`: land a drifted batch and say who notices."""
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


def cmd_dev(args: argparse.Namespace) -> int:
    """`slipway dev`: the Dagster and MLflow UIs on the local stack."""
    from definitions.cli.dev import prepare, serve
    from definitions.paths import DEFS_ENV

    if args.defs is not None:
        # The code server loads definitions/definitions.py, which reads the folder from here.
        os.environ[DEFS_ENV] = str(args.defs.resolve())
    return serve(prepare(args.stack), args.port, args.mlflow_port)


def cmd_serve(args: argparse.Namespace) -> int:
    """`slipway serve MODEL[@ALIAS]`: the version an alias holds, over HTTP."""
    from definitions.cli.serve import serve
    from definitions.paths import defs_folder

    try:
        defs = (args.defs or defs_folder()).resolve()
    except SlipwayError:  # outside a project: served without its serve: block
        defs = None
    max_bytes = int(args.max_request_mb * 1024 * 1024)
    return serve(args.model, args.alias, args.host, args.port, args.stack, defs, args.poll, max_bytes, say=emit)


def cmd_predict(args: argparse.Namespace) -> int:
    """`slipway predict MODEL --input FILE`: a file scored by the version an alias holds."""
    from definitions.cli.serve import predict
    from definitions.paths import defs_folder

    try:
        defs = (args.defs or defs_folder()).resolve()
    except SlipwayError:  # outside a project: the alias defaults to champion
        defs = None
    out, version, rows = predict(args.model, args.input, args.output, args.stack, defs_dir=defs)
    emit(f"{rows} rows scored by v{version}: {out}")
    return 0


def cmd_stack_show(args: argparse.Namespace) -> int:
    """`slipway stack show`: the resolved stack and where each value came from."""
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
