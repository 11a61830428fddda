"""Links into the Dagster UI, for what people read elsewhere: MLflow runs and versions, alerts.

The UI's address is ``$SLIPWAY_DAGSTER_UI_URL``, else ``http://127.0.0.1:3000``, where
``slipway dev`` serves it by default; a deployment sets the variable to its webserver's address
(with any path prefix). A password in it is for the browser to ask for, never stored in a link.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from resources.redact import redact

DAGSTER_UI_VAR = "SLIPWAY_DAGSTER_UI_URL"
DEFAULT_DAGSTER_UI = "http://127.0.0.1:3000"


def dagster_ui() -> str:
    """The base address of the Dagster UI, without a trailing slash."""
    return redact(os.environ.get(DAGSTER_UI_VAR, "").strip() or DEFAULT_DAGSTER_UI).rstrip("/")


def dagster_run(run_id: str) -> str:
    """The page of Dagster run ``run_id`` (its steps, logs and events)."""
    return f"{dagster_ui()}/runs/{quote(run_id)}"


def dagster_asset(key: str) -> str:
    """The page of asset ``key`` (``pipeline/name``): its materializations, checks and lineage."""
    return f"{dagster_ui()}/assets/{'/'.join(quote(part, safe='') for part in key.split('/'))}"


def markdown_link(label: str, url: str) -> str:
    """``[label](url)``, the label's brackets escaped (MLflow renders descriptions as markdown)."""
    shown = label.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"[{shown}]({url.replace(' ', '%20').replace(')', '%29')})"
