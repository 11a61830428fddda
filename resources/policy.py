"""What pipeline YAML may reach: which modules its import paths may name, which folders its sources may read."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class ImportPolicy(dg.ConfigurableResource):
    """The stack's allow-lists for what YAML names: import paths (code execution) and data folders.

    Stack YAML::

        allowed_imports: [sklearn, xgboost, lightgbm, definitions]
        data_roots: [/mnt/landing]
    """

    allowed: list[str] = Field(description="Module prefixes that import paths may start with.")
    data_roots: list[str] = Field(
        default_factory=list, description="Folders outside the project that file sources may read."
    )
