"""A pydantic model's JSON Schema, made to refuse what the model refuses.

pydantic's generated schema is looser than its validation in two ways Helm's validator shows
(tagged unions, maps with key patterns) and noisier in one (a title per property); these
rewrite it in place. Used for the chart's ``values.schema.json`` (:mod:`stacks.chart`).
"""

from __future__ import annotations

from typing import Any


def tagged_unions(node: Any) -> None:
    """Rewrite each tagged union (``oneOf`` + ``discriminator``) as pydantic reads it: the tag picks the variant.

    JSON Schema ignores ``discriminator``, so a bad ``type`` fails every branch of the
    ``oneOf`` and the error lists them all; a variant whose fields all have defaults even
    matches a value without a tag, which pydantic refuses. Instead: the tag is required and one
    of the known names (a bad one is named in one line), and ``if`` tag ``then`` variant.
    """
    if isinstance(node, dict):
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict) and "oneOf" in node:
            tag, mapping = discriminator["propertyName"], discriminator["mapping"]
            del node["discriminator"], node["oneOf"]
            node.update(
                type="object",
                required=[tag],
                properties={tag: {"enum": sorted(mapping)}},
                allOf=[
                    {"if": {"properties": {tag: {"const": name}}, "required": [tag]}, "then": {"$ref": ref}}
                    for name, ref in sorted(mapping.items())
                ],
            )
        for value in node.values():
            tagged_unions(value)
    elif isinstance(node, list):
        for value in node:
            tagged_unions(value)


def closed_maps(node: Any) -> None:
    """Refuse a map key that does not match its pattern, as pydantic does.

    pydantic writes ``dict[EnvName, str]`` as ``patternProperties``, which only constrains the
    keys that match and lets any other through (``env: {"bad-name": …}`` passed ``helm lint``,
    then broke the manifest). With ``additionalProperties: false`` the other keys are refused
    at the map's path: ``at '/env': additional properties 'bad-name' not allowed``. (Helm's
    validator reports a ``propertyNames`` failure at ``''``, without the path.)
    """
    if isinstance(node, dict):
        if isinstance(node.get("patternProperties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            closed_maps(value)
    elif isinstance(node, list):
        for value in node:
            closed_maps(value)


def drop_titles(node: Any) -> None:
    """Remove pydantic's generated ``title`` of each property ("Pullpolicy"): noise in the file."""
    if isinstance(node, dict):
        for value in (node.get("properties") or {}).values():
            if isinstance(value, dict):
                value.pop("title", None)
        for value in node.values():
            drop_titles(value)
    elif isinstance(node, list):
        for value in node:
            drop_titles(value)


def nested(path: tuple[str, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    """``{"properties": {a: {"properties": {b: leaf}, ...}}}``: a schema for the value at ``path``."""
    node = leaf
    for key in reversed(path):
        node = {"properties": {key: node}, "required": [key]}
    return node
