"""``slipway validate``: every definition and the active stack, checked as deeply as possible offline."""

from __future__ import annotations

from pathlib import Path

from assets.loader import load_pipelines
from definitions.paths import DEFS_DIR
from definitions.runner import check_imports, resolve_imports
from resources.errors import DefinitionError
from stacks import load_stack


def validate(stack_name: str | None = None, defs_dir: Path | None = None) -> list[str]:
    """Check the stack, the YAML, the allow-list, every import path and expectation name.

    Returns a line per pipeline on success; raises a :class:`SlipwayError` listing every problem.
    """
    loaded_stack = load_stack(stack_name)
    stack = loaded_stack.stack
    pipelines = load_pipelines(defs_dir or DEFS_DIR)
    check_imports(pipelines, stack.allowed_imports)
    keys = {f"{p.spec.name}/{n}" for p in pipelines for n in [*p.spec.datasets, *p.spec.models]}
    resolve_imports(pipelines, stack.allowed_imports, keys)
    errors = []
    if any(d.expectations for p in pipelines for d in p.spec.datasets.values()):
        from resources.validator import GreatExpectationsValidator

        validator = GreatExpectationsValidator(result_format=stack.data_validator.result_format)
        for p in pipelines:
            for name, dataset in p.spec.datasets.items():
                for index, expectation in enumerate(dataset.expectations):
                    where = f"{p.where('datasets', name, 'expectations', index, 'expect')}: pipeline {p.spec.name}"
                    try:
                        validator.check(expectation.expect, expectation.kwargs, where)
                    except DefinitionError as exc:
                        errors.append(str(exc))
    if errors:
        raise DefinitionError("\n".join(errors))
    lines = [f"stack {loaded_stack.name}: ok ({loaded_stack.path})"]
    for p in pipelines:
        lines.append(
            f"{p.path}: pipeline {p.spec.name}: ok ({len(p.spec.datasets)} datasets, {len(p.spec.models)} models)"
        )
    return lines
