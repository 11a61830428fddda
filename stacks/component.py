"""What every stack component is: a closed ``type:`` plus its settings, and the resource it builds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from stacks.config import StackFields


class Component(BaseModel):
    """A stack component: a ``type:`` and that type's settings, nothing else (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The Dagster resource this implementation builds, as ``module:Class`` (imported when the
    #: stack is built, so that loading a stack imports no Dagster, MLflow or boto3).
    resource: ClassVar[str] = ""

    def resource_settings(self, stack: StackFields) -> dict[str, Any]:
        """The keyword arguments of :attr:`resource`: this component's settings."""
        return self.model_dump(exclude={"type", "storage"})

    def needs(self) -> list[tuple[str, str, bool, str]]:
        """``(key, environment variable, required, what it means)`` for each variable this component reads.

        A required one must be set to run at all (a password); another only changes what
        happens (an alert with no webhook URL is logged).
        """
        return []
