"""What ``slipway run`` reports for each asset (no Dagster import: the no-op path uses it too)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AssetOutcome:
    """How one asset ended in this `slipway run`."""

    key: str
    kind: str  # dataset | model | asset
    status: str  # built | reused | failed | interrupted (Ctrl-C) | blocked | not run
    seconds: float | None = None
    mlflow_run: str | None = None
    model_version: str | None = None
    alias: str | None = None
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    dagster_run_id: str | None = None
    data_version: str | None = None
    reason: str = ""  # why it was launched (never built, definition changed, ...)
    champion: str | None = None  # a model's version that holds its promotion alias (champion) at the end
    registered_model: str | None = None  # a model's name in the registry
