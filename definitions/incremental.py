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
from typing import Any

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
    waits: bool = False  # decided after its dataset is rebuilt: reused if the data came out the same


def _artifact_is_latest(artifacts_dir: Path, key: str, run_id: str) -> bool:
    latest = artifacts_dir.joinpath(*key.split("/"), "LATEST")
    try:
        return latest.read_text().strip().startswith(run_id)
    except FileNotFoundError:
        return False


def _first_reason(item: AssetPlan, record: dict[str, Any] | None, force: bool) -> str | None:
    """Why any asset is rebuilt regardless of its inputs, or None."""
    if force:
        return "--force"
    if record is None:
        return "never built"
    if record.get("code_version") != item.code_version:
        return "definition changed"
    return None


def _settle(item: AssetPlan, record: dict[str, Any] | None, reason: str | None) -> AssetPlan:
    # _first_reason gives a reason whenever there is no record.
    item.reuse, item.reason, item.record = reason is None, reason or "unchanged", record or {}
    return item


def _dataset(loaded: LoadedPipeline, name: str, ledger: Ledger, artifacts_dir: Path, force: bool) -> AssetPlan:
    dataset = loaded.spec.datasets[name]
    key = f"{loaded.spec.name}/{name}"
    item = AssetPlan(key, "dataset", code_version("dataset", dataset))
    where = f"{loaded.where('datasets', name, 'source')}: pipeline {loaded.spec.name}, dataset {name}"
    item.fingerprint = sources.fingerprint(dataset.source, loaded.folder, where)
    record = ledger.get(key)
    reason = _first_reason(item, record, force)
    if reason is None and record is not None:
        if record.get("fingerprint") != item.fingerprint:
            reason = "input data changed"
        elif not _artifact_is_latest(artifacts_dir, key, record.get("run_id", "?")):
            reason = "stored data is not the last good build"
    return _settle(item, record, reason)


def _model(loaded: LoadedPipeline, name: str, ledger: Ledger, upstream: AssetPlan, force: bool) -> AssetPlan:
    key = f"{loaded.spec.name}/{name}"
    item = AssetPlan(key, "model", code_version("model", loaded.spec.models[name]), upstream=upstream.key)
    record = ledger.get(key)
    reason = _first_reason(item, record, force)
    if reason is None and record is not None:
        if not upstream.reuse:
            reason = f"{upstream.key} is rebuilt"
            # New input bytes almost always mean new data: train in the same run. Otherwise
            # (an edited expectation, say) wait for the new data version and compare.
            item.waits = upstream.reason != "input data changed"
        elif record.get("upstream_data_version") != upstream.record.get("data_version"):
            reason = f"{upstream.key} has new data"
    return _settle(item, record, reason)


def settle_waiting(item: AssetPlan, upstream_data_version: str | None) -> bool:
    """Decide a waiting model once its dataset is rebuilt; True when it must train."""
    if upstream_data_version is not None and item.record.get("upstream_data_version") == upstream_data_version:
        item.reuse, item.reason = True, f"unchanged ({item.upstream} rebuilt with the same data)"
        return False
    item.reason = f"{item.upstream} has new data"
    return True


def plan(pipelines: list[LoadedPipeline], ledger: Ledger, artifacts_dir: Path, force: bool) -> list[AssetPlan]:
    """One :class:`AssetPlan` per asset of ``pipelines``, datasets before their models."""
    plans: list[AssetPlan] = []
    for loaded in pipelines:
        datasets = {name: _dataset(loaded, name, ledger, artifacts_dir, force) for name in loaded.spec.datasets}
        plans += datasets.values()
        plans += [_model(loaded, name, ledger, datasets[m.dataset], force) for name, m in loaded.spec.models.items()]
    return plans
