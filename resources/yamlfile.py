"""YAML documents with the line of every key, so errors can say ``path:line``."""

from __future__ import annotations

from typing import Any

import yaml

Loc = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it (its wheels are): the same documents, nodes and
# marks as the pure-Python SafeLoader, several times faster on large folders. Its error messages
# are terser ("found character that cannot start any token", without the character), so a
# document it refuses is parsed again by the pure-Python loader for the message.
_FAST: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def load_with_lines(text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse ``text`` once; return the document and the 1-based line of each key path.

    Raises ``yaml.MarkedYAMLError`` for malformed YAML, and for a key given twice in one
    mapping (YAML itself keeps the last one silently; here it is an error naming both lines).
    """
    if _FAST is not None:
        try:
            return _parse(_FAST, text)
        except yaml.MarkedYAMLError:
            pass  # parsed again below, for the pure-Python loader's message
    return _parse(yaml.SafeLoader, text)


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
