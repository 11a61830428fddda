"""Component types that turn pipeline YAML into Dagster assets and checks (a dg registry module).

``Pipeline`` is imported on first use, so that the schema and the version hashes
(``assets.spec.schema``, ``assets.spec.versions``) can be used without importing Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assets.pipeline import Pipeline

__all__ = ["Pipeline"]


def __getattr__(name: str) -> Any:
    if name == "Pipeline":
        from assets.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
