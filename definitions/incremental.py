"""Decide what a run must build: an asset is reused when its definition and inputs are unchanged.

- A dataset is reused when its code version and its input fingerprint (the bytes of its files)
  match the last successful build, and that build's artifact is still the latest one stored.
- A model is reused when its code version matches and its dataset is reused with the data
  version the model was trained on.

This reads only YAML, file bytes and the ledger: no Dagster, MLflow or scikit-learn import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from assets import sources
from assets.loader import LoadedPipeline
from assets.versions import code_version
from definitions.ledger import Ledger


@dataclass
class AssetPlan:
    """What will happen to one asset, and why."""

    key: str
    kind: str  # "dataset" | "model"
    code_version: str
    fingerprint: str = ""
    upstream: str | None = None
    reuse: bool = False
    reason: str = ""
    record: dict = field(default_factory=dict)


def _artifact_is_latest(artifacts_dir: Path, key: str, run_id: str) -> bool:
    latest = artifacts_dir.joinpath(*key.split("/"), "LATEST")
    try:
        return latest.read_text().strip().startswith(run_id)
    except FileNotFoundError:
        return False


def plan(pipelines: list[LoadedPipeline], ledger: Ledger, artifacts_dir: Path, force: bool) -> list[AssetPlan]:
    """One :class:`AssetPlan` per asset of ``pipelines``, datasets before their models."""
    plans: list[AssetPlan] = []
    for loaded in pipelines:
        spec = loaded.spec
        datasets: dict[str, AssetPlan] = {}
        for name, dataset in spec.datasets.items():
            key = f"{spec.name}/{name}"
            item = AssetPlan(key, "dataset", code_version("dataset", dataset))
            where = f"{loaded.where('datasets', name, 'source')}: pipeline {spec.name}, dataset {name}"
            item.fingerprint = sources.fingerprint(dataset.source, loaded.folder, where)
            record = ledger.get(key)
            if force:
                item.reason = "--force"
            elif record is None:
                item.reason = "never built"
            elif record.get("code_version") != item.code_version:
                item.reason = "definition changed"
            elif record.get("fingerprint") != item.fingerprint:
                item.reason = "input data changed"
            elif not _artifact_is_latest(artifacts_dir, key, record.get("run_id", "?")):
                item.reason = "stored data is not the last good build"
            else:
                item.reuse, item.reason, item.record = True, "unchanged", record
            datasets[name] = item
            plans.append(item)
        for name, model in spec.models.items():
            key = f"{spec.name}/{name}"
            upstream = datasets[model.dataset]
            item = AssetPlan(key, "model", code_version("model", model), upstream=upstream.key)
            record = ledger.get(key)
            if force:
                item.reason = "--force"
            elif record is None:
                item.reason = "never built"
            elif record.get("code_version") != item.code_version:
                item.reason = "definition changed"
            elif not upstream.reuse:
                item.reason = f"{upstream.key} is rebuilt"
            elif record.get("upstream_data_version") != upstream.record.get("data_version"):
                item.reason = f"{upstream.key} has new data"
            else:
                item.reuse, item.reason, item.record = True, "unchanged", record
            plans.append(item)
    return plans
