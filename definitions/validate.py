"""``slipway validate``: every definition and the active stack, checked as deeply as possible offline."""

from __future__ import annotations

from pathlib import Path

from assets import graph
from assets.loader import LoadedPipeline, load_pipelines
from assets.preflight import check_pipeline
from definitions.paths import DEFS_DIR
from definitions.runner import check_imports
from resources.errors import DefinitionError
from resources.settings import GreatExpectationsSettings
from stacks import load_stack
from stacks.build import needs_lines


def validate(stack_name: str | None = None, defs_dir: Path | None = None) -> list[str]:
    """Check the stack, the YAML, the allow-list, imports, params, data files, columns and expectations.

    Problems that only a run would otherwise find (a data file that is missing, a column the
    data lacks, a parameter the estimator refuses) are found here too: see
    :mod:`assets.preflight`. Returns a line per pipeline on success; raises a
    :class:`DefinitionError` listing every problem, one ``path:line: pipeline P: ...`` line each.
    """
    loaded_stack = load_stack(stack_name)
    stack = loaded_stack.stack
    pipelines = load_pipelines(defs_dir or DEFS_DIR)
    # Nothing is imported unless every import path is on the allow-list.
    check_imports(pipelines, stack.allowed_imports)
    errors = []
    for p in pipelines:
        errors += check_pipeline(p, stack.allowed_imports, stack.data_roots)
    errors += _expectation_errors(pipelines, stack.data_validator)
    if errors:
        raise DefinitionError("\n".join(errors))
    if graph.unresolved(graph.references(pipelines), graph.declared(pipelines)):
        # A key no YAML pipeline declares: a hand-written asset, or a mistake. Only the loaded
        # code location knows which (its check raises the same messages as the YAML's).
        from definitions.definitions import build_definitions

        build_definitions(defs_dir or DEFS_DIR, loaded_stack)
    lines = [f"stack {loaded_stack.name}: ok ({loaded_stack.path})"]
    lines += [f"stack {loaded_stack.name}: {line}" for line in needs_lines(loaded_stack.stack)]
    for p in pipelines:
        lines.append(
            f"{p.path}: pipeline {p.spec.name}: ok ({len(p.spec.datasets)} datasets, {len(p.spec.models)} models)"
        )
    return lines


def _expectation_errors(pipelines: list[LoadedPipeline], settings: GreatExpectationsSettings) -> list[str]:
    """Unknown expectations and arguments GX refuses (GX is imported only when there are expectations)."""
    if not any(d.expectations for p in pipelines for d in p.spec.datasets.values()):
        return []
    from resources.validator import GreatExpectationsValidator

    validator = GreatExpectationsValidator(result_format=settings.result_format)
    errors = []
    for p in pipelines:
        for name, dataset in p.spec.datasets.items():
            for index, expectation in enumerate(dataset.expectations):
                where = f"{p.where('datasets', name, 'expectations', index, 'expect')}: pipeline {p.spec.name}"
                try:
                    validator.check(expectation.expect, expectation.kwargs, where)
                except DefinitionError as exc:
                    errors.append(str(exc))
    return errors
