"""Which models are served by the stack, in which order, and the URL shown on each one's Dagster page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg

from assets.spec.loader import LoadedPipeline
from assets.spec.tags import SERVE_METADATA


def served_models(pipelines: Iterable[LoadedPipeline]) -> list[str]:
    """The registered names of the models that declare ``serve:``, in the order the deployer numbers them."""
    return sorted(f"{p.spec.name}.{name}" for p in pipelines for name, model in p.spec.models.items() if model.serve)


def with_served_urls(defs: dg.Definitions, deployer: Any) -> dg.Definitions:
    """``defs`` with ``served_at`` (the deployer's URL) on each served model's asset, when the stack serves it."""
    names = sorted(
        str(spec.metadata["slipway/registered_model"])
        for item in defs.assets or []
        if isinstance(item, dg.AssetsDefinition)
        for spec in item.specs
        if SERVE_METADATA in spec.metadata
    )
    urls = {name: deployer.url(name, index) for index, name in enumerate(names)}
    if not any(urls.values()):
        return defs

    def show(spec: dg.AssetSpec) -> dg.AssetSpec:
        url = urls.get(str(spec.metadata.get("slipway/registered_model")))
        if url is None or SERVE_METADATA not in spec.metadata:
            return spec
        return spec.replace_attributes(metadata={**spec.metadata, "served_at": dg.MetadataValue.url(url)})

    return defs.permissive_map_resolved_asset_specs(selection=None, func=show)
