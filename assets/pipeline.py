"""The ``assets.Pipeline`` component: one ``defs.yaml`` becomes datasets and models as assets."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Self

import dagster as dg
from pydantic import BaseModel

from assets.data.dataset_asset import build_dataset_asset
from assets.data.partitioning import dataset_partitions, partitions_per_run, window_counts
from assets.data.source_asset import build_source_asset
from assets.data.sources import observable
from assets.model.model_asset import build_model_asset
from assets.serve.predictions import build_alias_source, build_predictions_asset, build_served_source
from assets.spec import graph
from assets.spec.loader import LoadedPipeline, parse_file
from assets.spec.schema import PipelineSpec
from assets.spec.scoring import alias_of
from assets.spec.versions import code_files


class Pipeline(dg.Component):
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

    The attributes are a :class:`assets.spec.schema.PipelineSpec`, the closed models ``slipway
    validate`` uses: ``dg check yaml`` validates against their JSON Schema and Dagster loads
    the attributes with them, so an unknown or mistyped key is refused by both tools.
    (Dagster's ``{{ ... }}`` templates are not rendered in these attributes; ``${SLIPWAY_HOME}``
    in a data path is expanded by Slipway.)

    Each dataset becomes the asset ``<name>/<dataset>``, each model ``<name>/<model>``, all in
    the asset group ``<name>``; each asset's ``code_version`` is a hash of its own resolved
    definition. Relative data paths start at the folder of the ``defs.yaml``.
    """

    def __init__(self, loaded: LoadedPipeline) -> None:
        """The pipeline of one parsed ``defs.yaml`` (its relative data paths start at its folder)."""
        self.loaded = loaded
        self.spec = loaded.spec
        self.folder = loaded.folder

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        """The schema of the attributes: the pipeline schema itself."""
        return PipelineSpec

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> Self:
        """The pipeline of ``<context.path>/defs.yaml``.

        Dagster has validated ``attributes`` with :class:`PipelineSpec` by now. The file is
        parsed again by the loader of ``slipway validate`` so that the rules across fields
        (``PipelineSpec.problems``) apply too, with the same ``path:line`` messages.
        """
        return cls(parse_file(Path(context.path) / "defs.yaml"))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:  # noqa: D102
        return build_pipeline_defs(self.loaded)


def build_pipeline_defs(loaded: LoadedPipeline) -> dg.Definitions:
    """The assets (and their checks) of one parsed pipeline."""
    spec, folder = loaded.spec, loaded.folder
    refs = graph.references([loaded])
    assets = [
        build_dataset_asset(
            spec.name,
            name,
            dataset,
            folder,
            at=functools.partial(loaded.where, "datasets", name),
            refs=graph.refs_metadata(refs, f"{spec.name}/{name}"),
            partitions=dataset_partitions(spec, name),
            per_run=partitions_per_run(spec, name),
            windows=window_counts(spec, name),
        )
        for name, dataset in spec.datasets.items()
    ]
    assets += [
        build_model_asset(
            spec.name,
            name,
            model,
            folder,
            tuple(code_files(spec.datasets[model.dataset])) if model.dataset in spec.datasets else (),
            refs=graph.refs_metadata(refs, f"{spec.name}/{name}"),
        )
        for name, model in spec.models.items()
    ]
    sources = [
        build_source_asset(spec.name, name, dataset, folder, dataset_partitions(spec, name))
        for name, dataset in spec.datasets.items()
        if observable(dataset.source)
    ]
    aliases = {}
    for name, scored in spec.predictions.items():
        model = spec.models[scored.model]
        assets.append(build_predictions_asset(spec.name, name, scored, model, folder))
        alias = alias_of(scored, model.promote.alias)
        aliases[(scored.model, alias)] = build_alias_source(spec.name, scored.model, alias)
    served = [
        build_served_source(spec.name, name)
        for name, model in spec.models.items()
        if model.serve is not None or (model.retrain and model.retrain.on_drift and model.retrain.on_drift.served)
    ]
    return dg.Definitions(assets=[*assets, *sources, *aliases.values(), *served])
