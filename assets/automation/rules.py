"""Which automation condition each asset of the code location carries.

A dataset (and any hand-written asset) carries the rebuild predicate
(:func:`assets.automation.rebuild.rebuild_condition`). A model carries it together with
:class:`assets.automation.retrain.GitChange` (:data:`MODEL_RULE`): by itself (deployed, the UI,
sensors) it is rebuilt for what git changed and retrains on new data only by its retrain policy.
`slipway run` loads the same code location; a person who asked also gets the models only
``GitChange`` held back, read from Dagster's evaluation (:mod:`assets.automation.holds`).

A hand-written asset without a code version gets the bytes of the file that defines it as one,
so editing it counts as a changed definition.
"""

from __future__ import annotations

import dagster as dg

from assets.automation.rebuild import StoredOutputs, rebuild_condition
from assets.automation.retrain import GitChange
from assets.spec.versions import source_version

MODEL_RULE = "slipway rebuild (models)"


def with_rules(pipelines: dg.Definitions, stores: StoredOutputs) -> dg.Definitions:
    """``pipelines`` with the rule on every materializable asset that declares no condition of its own."""
    condition = rebuild_condition(stores)
    model_condition = (condition & GitChange(stores)).with_label(MODEL_RULE)
    materializable = {
        key: item
        for item in pipelines.assets or []
        if isinstance(item, dg.AssetsDefinition) and item.is_materializable
        for key in item.keys
    }

    def carry_the_rule(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in materializable:
            return spec
        if spec.automation_condition is None:
            is_model = "slipway/registered_model" in spec.metadata
            spec = spec.replace_attributes(automation_condition=model_condition if is_model else condition)
        if spec.code_version is None:
            version = source_version(materializable[spec.key])
            if version is not None:
                spec = spec.replace_attributes(code_version=version)
        return spec

    # Observable sources are SourceAssets, which map_asset_specs refuses; they keep no condition.
    return pipelines.permissive_map_resolved_asset_specs(selection=None, func=carry_the_rule)
