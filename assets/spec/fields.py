"""The building blocks of the pipeline schema: closed models and the patterns names must match."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
# A dataset of the same pipeline by name, or any asset of the code location by key (a/b).
INPUT_PATTERN = r"^([a-z][a-z0-9_]*|[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)+)$"
IMPORT_PATH_PATTERN = r"^[A-Za-z_][\w.]*([:.][A-Za-z_]\w*)$"
ENV_VAR_PATTERN = r"^[A-Z_][A-Z0-9_]*$"


class Closed(BaseModel):
    """A schema block: unknown keys are refused, and a loaded definition does not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# What an import path names: a class with fit and predict, or a function.
ESTIMATOR = "estimator"
FUNCTION = "function"

#: Every field of a definition that is an import path (code the definition runs), by where it is in
#: a pipeline (``datasets.<name>.<field…>``, ``models.<name>.<field>``) and what it names. The one
#: list: the allow-list check, the imports before a run, preflight and code versions all read it.
IMPORT_FIELDS: dict[tuple[str, ...], str] = {
    ("datasets", "transform"): FUNCTION,
    ("datasets", "source", "generator"): FUNCTION,
    ("models", "estimator"): ESTIMATOR,
    ("models", "train"): FUNCTION,
}
#: The field names that hold import paths, wherever they are in a definition (for code versions).
IMPORT_FIELD_NAMES = frozenset(fields[-1] for fields in IMPORT_FIELDS)
