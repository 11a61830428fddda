"""Asset outputs that carry their data version."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg


def versioned_output(value: Any, data_version: str, metadata: dict[str, Any]) -> dg.Output:
    """``dg.Output`` with a data version, without Dagster's BetaWarning for the parameter.

    ``Output(data_version=...)`` is marked beta; it is what makes staleness follow content, so
    it is used on purpose and the warning would only repeat that in every run's output.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.Output(value, data_version=dg.DataVersion(data_version), metadata=metadata)
