"""The ``model_deployer`` role: where the models that declare ``serve:`` are served, and at which URL.

- ``none`` (the default): nothing is started; ``slipway serve MODEL`` serves one by hand.
- ``local``: `slipway dev` starts ``slipway serve`` for each of them beside the UIs (ports from
  ``first_port`` in the order of their registered names) and stops them with everything else.
- ``kubernetes``: the Helm chart's Deployment and Service per served model (``servedModels`` in
  its values); the URL is the Service's inside the cluster.

Each served model's URL is shown on its Dagster page (the asset's ``served_at`` metadata).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stacks.component import Component


class NoDeployer(Component):
    """Nothing is served by the stack; ``slipway serve MODEL`` serves one by hand."""

    type: Literal["none"] = "none"

    def url(self, registered: str, index: int) -> str | None:
        """The URL ``registered`` (the ``index``-th served model) answers at; None: not served by the stack."""
        return None


class LocalDeployer(Component):
    """`slipway dev` serves each model that declares ``serve:``, on this machine."""

    type: Literal["local"] = "local"
    host: str = Field(default="127.0.0.1", description="Address the servers listen on.")
    first_port: int = Field(default=5001, ge=1024, le=65000, description="Port of the first served model.")

    def url(self, registered: str, index: int) -> str | None:  # noqa: D102
        return f"http://{self.host}:{self.first_port + index}/invocations"

    def port(self, index: int) -> int:
        """The port of the ``index``-th served model."""
        return self.first_port + index


class KubernetesDeployer(Component):
    """The Helm chart serves each model that declares ``serve:`` (a Deployment and a Service each)."""

    type: Literal["kubernetes"] = "kubernetes"
    port: int = Field(default=8080, ge=1, le=65535, description="The Service's port.")

    def url(self, registered: str, index: int) -> str | None:  # noqa: D102
        return f"http://{service_name(registered)}:{self.port}/invocations"


def service_name(registered: str) -> str:
    """The Kubernetes name of ``pipeline.model``'s server (``slipway-serve-shop-clf``)."""
    # Kubernetes names are at most 63 characters (the chart cuts them the same way).
    return ("slipway-serve-" + registered.replace(".", "-").replace("_", "-").lower())[:63].rstrip("-")
