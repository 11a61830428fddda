"""YAML documents with the line of every key, so errors can say ``path:line``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it (its wheels are): the same documents, nodes and
# marks as the pure-Python SafeLoader, several times faster on large folders. Its error messages
# are terser ("found character that cannot start any token", without the character), so a
# document it refuses is parsed again by the pure-Python loader for the message.
_FAST: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)

# Bounds on a document, checked on PyYAML's event stream before anything is built: a 700-byte
# file of nested aliases ("a billion laughs") would otherwise expand to 10**9 values in every
# walk of the document, and 5,000 nested brackets would exhaust Python's recursion.
MAX_BYTES = 1_000_000
MAX_VALUES = 100_000  # scalars and collections, each alias counted as all it stands for
MAX_DEPTH = 64


class TooBig(yaml.MarkedYAMLError):
    """A document over one of the bounds above (an error of the YAML, with the line where it went over)."""


def read_document(path: Path) -> tuple[Any, dict[Loc, int]]:
    """:func:`load_with_lines` of the file at ``path``, refused unread when it exceeds :data:`MAX_BYTES`.

    Raises ``OSError`` when it cannot be read and ``yaml.MarkedYAMLError`` (:class:`TooBig`
    among them) when it is not a bounded YAML document; :func:`problem` says either in one line.
    """
    _check_size(path)
    return load_with_lines(path.read_text())


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise TooBig(None, None, f"{size} bytes; a definition file may hold at most {MAX_BYTES}", None)


def check_bounds(path: Path) -> None:
    """:class:`resources.errors.DefinitionError` when the file at ``path`` is over a bound (:func:`read_document`).

    Only the bounds: a file that cannot be read, or is malformed YAML, is left to its loader.
    """
    from resources.errors import DefinitionError

    try:
        _check_size(path)
        _bounded(_FAST or yaml.SafeLoader, path.read_text())
    except TooBig as exc:
        raise DefinitionError(problem(path, exc)) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return


def problem(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """``path:line: malformed YAML: ...`` (or, over a bound, ``path[:line]: ...``) for a refused document."""
    if isinstance(exc, TooBig):
        return f"{path}{f':{exc.problem_mark.line + 1}' if exc.problem_mark else ''}: {exc.problem}"
    line = exc.problem_mark.line + 1 if exc.problem_mark else 1
    return f"{path}:{line}: malformed YAML: {exc.problem}"


def load_with_lines(text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse ``text`` once; return the document and the 1-based line of each key path.

    Raises ``yaml.MarkedYAMLError`` for malformed YAML, and for a key given twice in one
    mapping (YAML itself keeps the last one silently; here it is an error naming both lines).
    """
    if _FAST is not None:
        try:
            _bounded(_FAST, text)
            return _parse(_FAST, text)
        except TooBig:
            raise
        except yaml.MarkedYAMLError:
            pass  # parsed again below, for the pure-Python loader's message
    _bounded(yaml.SafeLoader, text)
    return _parse(yaml.SafeLoader, text)


def _bounded(kind: type[yaml.SafeLoader], text: str) -> None:
    """Raise :class:`TooBig` when ``text`` nests deeper than :data:`MAX_DEPTH` or expands past :data:`MAX_VALUES`.

    One pass over the parser's events, which builds nothing: each anchor's expanded size is
    known when its node ends, so an alias adds that size without being expanded.
    """
    loader = kind(text)
    sizes: dict[str, int] = {}
    open_nodes: list[list[Any]] = []  # [anchor, values so far] of each collection being read
    total = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                if len(open_nodes) == MAX_DEPTH:
                    raise TooBig(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
                open_nodes.append([event.anchor, 1])
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, count = open_nodes.pop()
            elif isinstance(event, yaml.ScalarEvent):
                anchor, count = event.anchor, 1
            elif isinstance(event, yaml.AliasEvent):
                anchor, count = None, sizes.get(event.anchor or "", 1)  # an unknown one: refused when composed
            else:
                continue
            if anchor is not None:
                sizes[anchor] = count
            if open_nodes:
                open_nodes[-1][1] += count
            else:
                total += count
            if total + sum(node[1] for node in open_nodes) > MAX_VALUES:
                raise TooBig(
                    None,
                    None,
                    f"its aliases expand it to more than {MAX_VALUES} values; write the repeated parts out, "
                    "or repeat them less",
                    event.start_mark,
                )
    finally:
        loader.dispose()


def _parse(kind: type[yaml.SafeLoader], text: str) -> tuple[Any, dict[Loc, int]]:
    loader = kind(text)
    try:
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if root is not None:
        _line_map(root, (), lines)
    return document, lines


def line_of(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of the deepest key on ``loc`` that the document has (1 when none)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _line_map(node: yaml.Node, prefix: Loc, out: dict[Loc, int]) -> None:
    out[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, _ in node.value:
            if key.value in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key.value!r} (first on line {first[key.value]})", key.start_mark
                )
            first[key.value] = key.start_mark.line + 1
        for key, value in node.value:
            path = (*prefix, key.value)
            _line_map(value, path, out)
            out[path] = key.start_mark.line + 1  # a key's line, not its value's
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*prefix, index), out)
