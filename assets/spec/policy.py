"""A model's retrain policy as the asset graph carries it (its metadata), read by the retrain sensor.

:mod:`assets.automation.retrain` decides with it; the model asset (:mod:`assets.model.model_asset`)
writes it into its metadata, so the sensor reads every policy from the loaded definitions alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from assets.spec.graph import key_of
from assets.spec.schedules import Retrain
from assets.spec.tags import RETRAIN_METADATA


@dataclass(frozen=True)
class Policy:
    """A model's retrain policy, with what its drift evaluation needs (from the asset's metadata)."""

    asset: str
    registered: str
    retrain: Retrain
    dataset: str
    target: str
    features: tuple[str, ...] | None
    alias: str
    split_by: str | None = None

    def drift_features(self, columns: Iterable[Any]) -> list[str]:
        """The columns drift compares: ``on_drift.features``, else the model's, else all but the target and id."""
        drift = self.retrain.on_drift
        if drift is not None and drift.features:
            return list(drift.features)
        if self.features is not None:
            return list(self.features)
        return [str(c) for c in columns if c not in (self.target, self.split_by)]

    def metadata(self) -> str:
        """The JSON kept in the model asset's metadata."""
        return json.dumps(
            {
                "retrain": self.retrain.model_dump(mode="json"),
                "dataset": self.dataset,
                "target": self.target,
                "features": list(self.features) if self.features is not None else None,
                "alias": self.alias,
                "split_by": self.split_by,
            },
            sort_keys=True,
        )

    @staticmethod
    def of(asset: str, registered: str, text: str) -> Policy:
        """From :meth:`metadata`'s JSON."""
        data = json.loads(text)
        features = data.get("features")
        return Policy(
            asset,
            registered,
            Retrain.model_validate(data["retrain"]),
            data["dataset"],
            data["target"],
            tuple(features) if features is not None else None,
            data["alias"],
            data.get("split_by"),
        )


def policy_metadata(pipeline: str, model: str, spec: Any) -> dict[str, str]:
    """The model asset's metadata entry for its retrain policy (none without a ``retrain`` block)."""
    if spec.retrain is None:
        return {}
    policy = Policy(
        f"{pipeline}/{model}",
        f"{pipeline}.{model}",
        spec.retrain,
        key_of(pipeline, spec.dataset),
        spec.target,
        tuple(spec.features) if spec.features is not None else None,
        spec.promote.alias,
        None if spec.evaluate_on else spec.split.by,
    )
    return {RETRAIN_METADATA: policy.metadata()}


def policies(graph: Any) -> list[Policy]:
    """Every model of the asset graph that declares a retrain policy."""
    found = []
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        metadata = graph.get(key).metadata
        text, registered = metadata.get(RETRAIN_METADATA), metadata.get("slipway/registered_model")
        if text is not None and registered is not None:
            found.append(
                Policy.of(
                    key.to_user_string(), str(getattr(registered, "value", registered)), getattr(text, "value", text)
                )
            )
    return found
