"""Load pipeline definitions from ``defs.yaml`` files, with errors as ``path:line: message``."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from assets.spec.metrics import suggest
from assets.spec.schema import PipelineSpec
from resources.errors import DefinitionError
from resources.yamlfile import Loc, line_of, problem, read_document

COMPONENT_TYPE = "assets.Pipeline"


@dataclass(frozen=True)
class LoadedPipeline:
    """A validated pipeline and the file it came from."""

    spec: PipelineSpec
    path: Path
    lines: dict[Loc, int]

    @property
    def folder(self) -> Path:
        """The pipeline's folder: relative data paths start here."""
        return self.path.parent

    def where(self, *loc: str | int) -> str:
        """``path:line`` of the deepest YAML node on ``loc`` (under ``attributes``)."""
        return f"{self.path}:{line_of(self.lines, ('attributes', *loc))}"


def _format_loc(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_file(path: Path) -> LoadedPipeline:
    """Parse and validate one ``defs.yaml``; raise :class:`DefinitionError` naming file and line."""
    try:
        document, lines = read_document(path)
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.MarkedYAMLError as exc:
        raise DefinitionError(problem(path, exc)) from exc
    if not isinstance(document, dict) or "attributes" not in document:
        raise DefinitionError(f"{path}:1: expected `type: {COMPONENT_TYPE}` and an `attributes:` mapping")
    if document.get("type") != COMPONENT_TYPE:
        raise DefinitionError(
            f"{path}:{line_of(lines, ('type',))}: unknown component type {document.get('type')!r}; "
            f"use `type: {COMPONENT_TYPE}`"
        )
    try:
        spec = PipelineSpec.model_validate(document["attributes"])
    except ValidationError as exc:
        name = document["attributes"].get("name", path.parent.name) if isinstance(document["attributes"], dict) else "?"
        messages = [_error_line(path, lines, name, err) for err in exc.errors()]
        raise DefinitionError("\n".join(messages)) from exc
    problems = spec.problems()
    if problems:
        raise DefinitionError(
            "\n".join(
                f"{path}:{line_of(lines, ('attributes', *loc))}: pipeline {spec.name}: {_format_loc(loc)}: {message}"
                for loc, message in problems
            )
        )
    return LoadedPipeline(spec=spec, path=path, lines=lines)


def _error_line(path: Path, lines: dict[Loc, int], pipeline: Any, err: Any) -> str:
    loc = tuple(err["loc"])
    line = line_of(lines, ("attributes", *loc))
    where = _format_loc(loc)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}{suggest(str(loc[-1]), _keys_at(loc[:-1]))}"
        where = _format_loc(loc[:-1])
    elif err["type"] == "missing":
        message = f"missing required key {loc[-1]!r}"
        where = _format_loc(loc[:-1])
    prefix = f"{where}: " if where else ""
    return f"{path}:{line}: pipeline {pipeline}: {prefix}{message}"


def _keys_at(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the schema accepts at ``loc`` (a pydantic error location in PipelineSpec)."""
    current: Any = PipelineSpec
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[str(part)].annotation
        else:  # a dict value or a list item
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[-1] if args else None
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            current = next(a for a in typing.get_args(current) if a is not type(None))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def discover(defs_dir: Path) -> Iterator[Path]:
    """Every ``defs.yaml`` below ``defs_dir``, in a stable order."""
    yield from sorted(defs_dir.rglob("defs.yaml"))


def load_pipelines(defs_dir: Path) -> list[LoadedPipeline]:
    """Load every pipeline below ``defs_dir``; all errors are reported together."""
    loaded: list[LoadedPipeline] = []
    errors: list[str] = []
    for path in discover(defs_dir):
        try:
            loaded.append(parse_file(path))
        except DefinitionError as exc:
            errors.append(str(exc))
    names: dict[str, Path] = {}
    for item in loaded:
        if item.spec.name in names:
            errors.append(
                f"{item.where('name')}: pipeline name {item.spec.name!r} is also used by {names[item.spec.name]}"
            )
        names[item.spec.name] = item.path
    if not errors:
        from assets.spec.graph import check

        errors = check(loaded)
    if errors:
        raise DefinitionError("\n".join(errors))
    return loaded
