"""The Dagster code location: every pipeline under ``defs/`` plus the active stack's resources.

``dg dev`` / ``dagster dev`` / ``slipway dev`` load this module; the stack comes from
``$SLIPWAY_STACK`` (default ``local``).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from stacks import load_stack
from stacks.build import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    """The pipelines declared under ``definitions/defs`` on the active stack."""
    stack = load_stack().stack
    pipelines = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return dg.Definitions.merge(pipelines, dg.Definitions(resources=build_resources(stack)))
