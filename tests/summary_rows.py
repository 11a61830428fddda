"""`slipway run`'s summary as rows: each asset's line with the lines its detail wraps onto, joined."""

from __future__ import annotations


def rows(stdout: str) -> list[str]:
    """The summary's lines, each line that continues the one above (indented) joined to it.

    The MLflow links under a ``mlflow:`` line are indented too: they stay lines of their own.
    """
    joined: list[str] = []
    links = False
    for line in stdout.splitlines():
        if not line.startswith(" "):
            links = line.startswith("mlflow:")
            joined.append(line)
        elif joined and not links:
            joined[-1] += " " + line.strip()
        else:
            joined.append(line)
    return joined


def row(stdout: str, key: str) -> str:
    """The row of asset ``key``, its detail whole."""
    return next(line for line in rows(stdout) if line.startswith(key + " "))
