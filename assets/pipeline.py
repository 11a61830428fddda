"""The ``assets.Pipeline`` component: one ``defs.yaml`` becomes datasets and models as assets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from assets.dataset_asset import build_dataset_asset
from assets.loader import parse_file
from assets.model_asset import build_model_asset
from assets.schema import PipelineSpec


class Pipeline(dg.Component, dg.Model, dg.Resolvable):
    """A declared ML pipeline: datasets (with expectations) and models (tracked, registered, gated).

    ``definitions/defs/houses/defs.yaml``::

        type: assets.Pipeline
        attributes:
          name: houses
          datasets:
            sales:
              source: {path: data/houses.csv}
              expectations:
                - {expect: column_values_to_be_between, column: price, min_value: 0}
          models:
            price_model:
              dataset: sales
              target: price
              estimator: sklearn.ensemble.RandomForestRegressor
              params: {n_estimators: 100, random_state: 0}
              metrics: [rmse, r2]
              promote: {gates: {r2: ">= 0.6"}}

    Each dataset becomes the asset ``<name>/<dataset>``, each model ``<name>/<model>``, all in
    the asset group ``<name>``; each asset's ``code_version`` is a hash of its own resolved
    definition. Relative data paths start at the folder of the ``defs.yaml``.
    """

    # Dagster's resolver accepts only plain field types, so the attributes are taken as data
    # here and validated by the closed models of assets.schema in build_defs, where the
    # errors name the file and line exactly as `slipway validate` does.
    name: str = Field(description="Pipeline name: the asset group, key prefix and MLflow experiment.")
    description: str | None = None
    datasets: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="name -> dataset (see assets.schema.Dataset)"
    )
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="name -> model (see assets.schema.Model)"
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:  # noqa: D102
        loaded = parse_file(Path(context.path) / "defs.yaml")
        return build_pipeline_defs(loaded.spec, loaded.folder)


def build_pipeline_defs(spec: PipelineSpec, folder: Path) -> dg.Definitions:
    """The assets (and their checks) of one pipeline whose ``defs.yaml`` is in ``folder``."""
    assets = [build_dataset_asset(spec.name, name, dataset, folder) for name, dataset in spec.datasets.items()]
    assets += [build_model_asset(spec.name, name, model, folder) for name, model in spec.models.items()]
    return dg.Definitions(assets=assets)
