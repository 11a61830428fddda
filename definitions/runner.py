"""``slipway run``: build what changed on the active stack, reuse the rest, report both."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.imports import check_allowed
from assets.loader import LoadedPipeline, load_pipelines
from assets.metrics import suggest
from definitions.incremental import AssetPlan, plan, settle_waiting
from definitions.ledger import Ledger, exclusive, ledger_path
from definitions.paths import DEFS_DIR
from resources.errors import DefinitionError
from stacks import LoadedStack, load_stack, slipway_home


@dataclass
class AssetOutcome:
    """How one asset ended in this run."""

    key: str
    kind: str
    status: str  # built | reused | failed | blocked | not run
    seconds: float | None = None
    mlflow_run: str | None = None
    model_version: str | None = None
    alias: str | None = None
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    dagster_run_id: str | None = None
    data_version: str | None = None
    upstream_data_version: str | None = None


@dataclass
class RunReport:
    """Everything ``slipway run`` did."""

    stack: str
    outcomes: list[AssetOutcome]
    dagster_run_ids: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when nothing failed or was blocked."""
        return all(o.status in ("built", "reused") for o in self.outcomes)


def select(pipelines: list[LoadedPipeline], names: Sequence[str]) -> list[LoadedPipeline]:
    """The pipelines named (all when none are)."""
    if not names:
        return pipelines
    by_name = {p.spec.name: p for p in pipelines}
    for name in names:
        if name not in by_name:
            raise DefinitionError(f"no pipeline named {name!r}{suggest(name, by_name)}")
    return [by_name[n] for n in names]


def check_imports(pipelines: list[LoadedPipeline], allowed: Sequence[str]) -> None:
    """Every import path in the definitions is on the stack's allow-list (nothing is imported)."""
    errors = []
    for p in pipelines:
        paths: list[tuple[tuple[str, ...], str | None]] = []
        paths += [(("datasets", n, "transform"), d.transform) for n, d in p.spec.datasets.items()]
        paths += [(("datasets", n, "source", "generator"), d.source.generator) for n, d in p.spec.datasets.items()]
        paths += [(("models", n, "estimator"), m.estimator) for n, m in p.spec.models.items()]
        paths += [(("models", n, "train"), m.train) for n, m in p.spec.models.items()]
        for loc, path in paths:
            if path and (":" in path or "." in path):
                try:
                    check_allowed(path, allowed, f"{p.where(*loc)}: pipeline {p.spec.name}")
                except DefinitionError as exc:
                    errors.append(str(exc))
    if errors:
        raise DefinitionError("\n".join(errors))


def resolve_imports(pipelines: list[LoadedPipeline], allowed: Sequence[str], keys: set[str]) -> None:
    """Import what the assets in ``keys`` name, so that a typo fails before anything runs."""
    from assets.imports import resolve

    for p in pipelines:
        for name, model in p.spec.models.items():
            if f"{p.spec.name}/{name}" in keys:
                field_name = "estimator" if model.estimator else "train"
                resolve(
                    getattr(model, field_name),
                    allowed,
                    f"{p.where('models', name, field_name)}: pipeline {p.spec.name}",
                )
        for name, dataset in p.spec.datasets.items():
            if f"{p.spec.name}/{name}" in keys and dataset.transform:
                resolve(dataset.transform, allowed, f"{p.where('datasets', name, 'transform')}: pipeline {p.spec.name}")


def run(
    names: Sequence[str] = (), stack_name: str | None = None, force: bool = False, defs_dir: Path | None = None
) -> RunReport:
    """Materialize the selected pipelines on the stack, incrementally unless ``force``."""
    started = time.perf_counter()
    loaded_stack = load_stack(stack_name)
    stack = loaded_stack.stack
    pipelines = select(load_pipelines(defs_dir or DEFS_DIR), names)
    check_imports(pipelines, stack.allowed_imports)
    home = slipway_home()
    with exclusive(home):
        return _run_locked(pipelines, loaded_stack, Ledger(ledger_path(home, loaded_stack.name)), force, started)


def _run_locked(
    pipelines: list[LoadedPipeline], loaded_stack: LoadedStack, ledger: Ledger, force: bool, started: float
) -> RunReport:
    stack = loaded_stack.stack
    plans = plan(pipelines, ledger, Path(stack.artifact_store.base_dir), force)
    outcomes = {p.key: _reused(p) for p in plans if p.reuse}
    run_ids: list[str] = []
    todo = [p for p in plans if not p.reuse and not p.waits]
    waiting = [p for p in plans if p.waits]
    if todo or waiting:
        resolve_imports(pipelines, stack.allowed_imports, {p.key for p in plans if not p.reuse})
    if todo:
        _execute(pipelines, loaded_stack, todo, ledger, outcomes, run_ids)
    second = []
    for item in waiting:
        upstream = outcomes[item.upstream or ""]
        if upstream.status != "built":
            outcomes[item.key] = AssetOutcome(
                item.key, item.kind, "blocked", detail=f"{upstream.key} {upstream.status}"
            )
        elif settle_waiting(item, upstream.data_version):
            second.append(item)
        else:
            outcomes[item.key] = _reused(item)
    if second:
        _execute(pipelines, loaded_stack, second, ledger, outcomes, run_ids)
    ordered = [outcomes[p.key] for p in plans]
    return RunReport(loaded_stack.name, ordered, run_ids, time.perf_counter() - started)


def _execute(
    pipelines: list[LoadedPipeline],
    loaded_stack: LoadedStack,
    todo: list[AssetPlan],
    ledger: Ledger,
    outcomes: dict[str, AssetOutcome],
    run_ids: list[str],
) -> None:
    """One Dagster run for ``todo``; record what it built in ``outcomes`` and the ledger."""
    from definitions.execute import execute

    run_id, built = execute(pipelines, loaded_stack, todo)
    run_ids.append(run_id)
    for item in todo:
        outcomes[item.key] = built[item.key]
        if built[item.key].status == "built":
            ledger.put(item.key, _record(item, built[item.key]))
    ledger.save()


def _reused(item: AssetPlan) -> AssetOutcome:
    record = item.record
    return AssetOutcome(
        item.key,
        item.kind,
        "reused",
        mlflow_run=record.get("mlflow_run"),
        model_version=record.get("model_version"),
        alias=record.get("alias"),
        detail=item.reason,
        metrics=record.get("metrics", {}),
    )


def _record(item: AssetPlan, outcome: AssetOutcome) -> dict[str, Any]:
    record: dict[str, Any] = {
        "code_version": item.code_version,
        "run_id": outcome.dagster_run_id,
        "data_version": outcome.data_version,
        "upstream_data_version": outcome.upstream_data_version,
    }
    if item.kind == "dataset":
        record["fingerprint"] = item.fingerprint
    else:
        record.update(
            mlflow_run=outcome.mlflow_run,
            model_version=outcome.model_version,
            alias=outcome.alias,
            metrics=outcome.metrics,
        )
    return record
