"""The checks of a definitions folder, one function for every door: validate, run and each side of plan.

:func:`check` loads the YAML (schema, references, cycles), holds every import path to the
stack's allow-list, then, with ``code``, resolves the import paths (an estimator's params, a
transform's arguments), reads the data files' headers (columns), checks the expectations with
Great Expectations and loads the code location when an input names a key no YAML declares (a
hand-written asset). Without ``code`` (a revision of `slipway plan` that is not the checked-out
tree) nothing is imported and no data file is read: the SQL of derived datasets and database
sources is still parsed, and an unknown input is still found when the folder holds no Python.
Every problem found is reported at once, one ``path:line: ...`` line each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from assets.spec import graph
from assets.spec.imports import check_allowed, import_paths
from assets.spec.loader import LoadedPipeline, load_pipelines
from assets.spec.preflight import check_pipeline
from resources.errors import DefinitionError
from resources.settings import GreatExpectationsSettings
from stacks import LoadedStack


def check(
    folder: Path,
    loaded: LoadedStack,
    code: bool = True,
    display: Callable[[str], str] = lambda text: text,
    location: bool = True,
    data: bool = True,
) -> list[LoadedPipeline]:
    """The pipelines of ``folder``, every check passed; else a :class:`DefinitionError` listing each problem.

    ``display`` rewrites each message (a revision's files are named ``REV:path``). Without
    ``location``, a key no YAML declares is left to the caller, which loads the code location
    anyway (`slipway run`). Without ``data``, no data file is read: a column a landed file lacks
    is then the data's problem, refused by that dataset as it builds (`slipway run`), not a
    reason to build nothing.
    """
    stack = loaded.stack
    try:
        pipelines = load_pipelines(folder)
    except DefinitionError as exc:
        raise DefinitionError(display(str(exc))) from exc
    errors, refused = allow_list_problems(pipelines, stack.allowed_imports)
    for p in pipelines:
        if p.spec.name not in refused:  # nothing is imported unless every import path is allowed
            errors += check_pipeline(p, stack.allowed_imports, stack.data_roots, code=code, data=data)
    if code:
        errors += _expectation_problems(pipelines, stack.data_validator)
    elif not any(folder.rglob("*.py")):
        # No hand-written asset can be there: a key no YAML declares is a mistake.
        errors += graph.reference_problems(graph.references(pipelines), graph.declared(pipelines), others=[])
    if errors:
        raise DefinitionError("\n".join(display(line) for line in _sorted(errors)))
    if code and location and graph.unresolved(graph.references(pipelines), graph.declared(pipelines)):
        # A key no YAML pipeline declares: a hand-written asset, or a mistake. Only the loaded
        # code location knows which (its check raises the same messages as the YAML's).
        from definitions.definitions import build_definitions

        build_definitions(folder, loaded)
    return pipelines


def check_imports(pipelines: list[LoadedPipeline], allowed: Sequence[str]) -> None:
    """Every import path in the definitions is on the stack's allow-list (nothing is imported)."""
    errors, _ = allow_list_problems(pipelines, allowed)
    if errors:
        raise DefinitionError("\n".join(errors))


def allow_list_problems(pipelines: list[LoadedPipeline], allowed: Sequence[str]) -> tuple[list[str], set[str]]:
    """Each import path off the stack's allow-list (nothing is imported), and the pipelines that have one."""
    errors: list[str] = []
    refused: set[str] = set()
    for p in pipelines:
        for found in import_paths(p.spec):
            if ":" in found.path or "." in found.path:
                where = f"{p.where(*found.location)}: pipeline {p.spec.name}"
                try:
                    check_allowed(found.path, allowed, where, found.kind)
                except DefinitionError as exc:
                    errors.append(str(exc))
                    refused.add(p.spec.name)
    return errors, refused


def _sorted(errors: list[str]) -> list[str]:
    """Each message once, by file and line: every problem of a file together, in the file's order."""

    def place(line: str) -> tuple[str, int]:
        path, _, rest = line.partition(":")
        number = rest.partition(":")[0]
        return path, int(number) if number.isdigit() else 0

    return sorted(dict.fromkeys(errors), key=place)


def _expectation_problems(pipelines: list[LoadedPipeline], settings: GreatExpectationsSettings) -> list[str]:
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
