"""Progress events from running assets, for the CLI to show (``slipway.progress`` logger).

The Dagster event log is the record; this is the live view in a terminal.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("slipway.progress")


def started(asset: str, what: str) -> None:
    """An asset began ``what`` (loading, training, …)."""
    logger.info("%s: %s…", asset, what)


def finished(asset: str, summary: str) -> None:
    """An asset finished its work; ``summary`` says what came of it."""
    logger.info("%s: %s", asset, summary)
