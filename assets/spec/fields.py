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
