"""Pipelines written from YAML text for the graph tests of several packages (spec, data, model)."""

from __future__ import annotations

import textwrap

import pytest

from definitions.cli.validate import validate
from resources.errors import DefinitionError

CRM = """
type: assets.Pipeline
attributes:
  name: crm
  datasets:
    customers:
      source: {path: data/customers.csv}
"""


def shop(write_pipeline, datasets: str, models: str = "") -> str:
    """Write pipeline shop with these dataset (and model) entries; return its defs.yaml path."""
    text = "type: assets.Pipeline\nattributes:\n  name: shop\n  datasets:\n"
    text += textwrap.indent(textwrap.dedent(datasets).strip("\n"), "    ") + "\n"
    if models:
        text += "  models:\n" + textwrap.indent(textwrap.dedent(models).strip("\n"), "    ") + "\n"
    return str(write_pipeline("shop", text))


def validate_error(defs_dir) -> str:
    """The error `slipway validate` raises for the definitions of ``defs_dir``."""
    with pytest.raises(DefinitionError) as info:
        validate(defs_dir=defs_dir)
    return str(info.value)


def failed_details(report) -> dict[str, str]:
    """The detail of each failed asset of a run report."""
    return {o.key: o.detail for o in report.outcomes if o.status == "failed"}
