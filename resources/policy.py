"""The import policy: which module prefixes pipeline YAML may name."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class ImportPolicy(dg.ConfigurableResource):
    """The stack's allow-list for import paths written in YAML (they are code execution).

    Stack YAML::

        allowed_imports: [sklearn, xgboost, lightgbm, definitions]
    """

    allowed: list[str] = Field(description="Module prefixes that import paths may start with.")
