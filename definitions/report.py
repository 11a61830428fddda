"""Terminal output of ``slipway run``: live progress and the closing summary table."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from definitions.runner import RunReport
from resources.redact import redact

_MARK = {"built": "✓", "reused": "=", "failed": "✗", "interrupted": "✗", "blocked": "⊘", "not run": "·"}


class _ProgressHandler(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.write(f"  {redact(record.getMessage())}\n")
        self.stream.flush()


def show_progress(stream: TextIO = sys.stderr) -> None:
    """Print asset progress events (``slipway.progress``) as they happen."""
    logger = logging.getLogger("slipway.progress")
    if not any(isinstance(h, _ProgressHandler) for h in logger.handlers):
        logger.addHandler(_ProgressHandler(stream))
    logger.setLevel(logging.INFO)
    logger.propagate = False


def summary(report: RunReport) -> str:
    """The summary table: asset, status, duration, MLflow run, model version, alias."""
    header = ("asset", "status", "time", "mlflow run", "version", "alias", "detail")
    rows = [header]
    for o in report.outcomes:
        rows.append(
            (
                o.key,
                f"{_MARK.get(o.status, '?')} {o.status}",
                f"{o.seconds:.2f}s" if o.seconds is not None else "-",
                o.mlflow_run or "-",
                o.model_version or "-",
                o.alias or "-",
                f"{o.reason}: {o.detail}" if o.reason and o.status != "reused" else o.detail,
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    lines += [f"alias {level}: {message}" for level, message in report.aliases]
    counts = {s: sum(o.status == s for o in report.outcomes) for s in _MARK}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines.append(
        f"stack {report.stack}: {tally} in {report.seconds:.1f}s"
        + (f" (dagster run {', '.join(report.dagster_run_ids)})" if report.dagster_run_ids else "")
    )
    return "\n".join(lines)
