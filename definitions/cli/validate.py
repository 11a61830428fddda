"""``slipway validate``: every definition and the active stack, checked as deeply as possible offline."""

from __future__ import annotations

from pathlib import Path

from definitions.checks import check
from definitions.paths import defs_folder
from resources.errors import count
from stacks import load_stack
from stacks.build import needs_lines


def validate(stack_name: str | None = None, defs_dir: Path | None = None) -> list[str]:
    """Check the stack, the YAML, the allow-list, imports, params, data files, columns and expectations.

    Problems that only a run would otherwise find (a data file that is missing, a column the
    data lacks, a parameter the estimator refuses) are found here too: see
    :mod:`assets.spec.preflight` and :func:`definitions.checks.check`, which `slipway run` and each
    side of `slipway plan` use too. Returns a line per pipeline on success; raises a
    :class:`DefinitionError` listing every problem, one ``path:line: pipeline P: ...`` line each.
    """
    loaded_stack = load_stack(stack_name)
    pipelines = check(defs_dir or defs_folder(), loaded_stack)
    lines = [f"stack {loaded_stack.name}: ok ({loaded_stack.path})"]
    lines += [f"stack {loaded_stack.name}: {line}" for line in needs_lines(loaded_stack.stack)]
    for p in pipelines:
        lines.append(
            f"{p.path}: pipeline {p.spec.name}: ok "
            f"({count(len(p.spec.datasets), 'dataset')}, {count(len(p.spec.models), 'model')})"
        )
    from assets.spec.sweep_check import sweep_notes
    from definitions.cli.partition_history import history_notes

    lines += [line for p in pipelines for line in sweep_notes(p)]

    lines += history_notes(pipelines, loaded_stack)  # what a change of partitioning leaves in the record
    return lines
