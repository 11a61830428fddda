"""Turn a loaded stack into Dagster resources and a Dagster instance configuration."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import yaml

from stacks.config import StackFields


def build_resources(stack: StackFields) -> dict[str, Any]:
    """The resources every pipeline asset asks for, by key, for this stack."""
    from resources.alerts import LogAlerter, WebhookAlerter
    from resources.artifacts import LocalArtifactStore
    from resources.drift import StatisticalDriftDetector
    from resources.policy import ImportPolicy
    from resources.registry import MlflowModelRegistry
    from resources.tracker import MlflowTracker
    from resources.validator import GreatExpectationsValidator

    tracker = stack.experiment_tracker
    alerter = stack.alerter
    return {
        "experiment_tracker": MlflowTracker(
            tracking_uri=tracker.tracking_uri,
            artifact_location=tracker.artifact_location,
            ui_url=tracker.ui_url,
            serialization=tracker.serialization,
            skops_trusted_types=list(tracker.skops_trusted_types),
        ),
        "model_registry": MlflowModelRegistry(
            tracking_uri=tracker.tracking_uri, registry_uri=stack.model_registry.registry_uri
        ),
        "data_validator": GreatExpectationsValidator(result_format=stack.data_validator.result_format),
        "drift_detector": StatisticalDriftDetector(bins=stack.drift_detector.bins),
        "io_manager": LocalArtifactStore(base_dir=stack.artifact_store.base_dir),
        "import_policy": ImportPolicy(allowed=list(stack.allowed_imports)),
        "alerter": (
            WebhookAlerter(**alerter.model_dump(exclude={"type"})) if alerter.type == "webhook" else LogAlerter()
        ),
    }


def executor(stack: StackFields) -> Any:
    """The Dagster executor of the stack's orchestrator (every launch path uses it)."""
    import dagster as dg

    executors = {"in_process": dg.in_process_executor}
    return executors[stack.orchestrator.type]


def instance_config(stack: StackFields) -> dict[str, Any]:
    """The ``dagster.yaml`` of the stack's Dagster instance."""
    base = Path(stack.instance.base_dir)
    storage = base / "storage"
    config: dict[str, Any] = {
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
        # Dagster's SQLite layout (what `storage: sqlite` makes), with the event log that keeps
        # one engine per database (stacks.dagster_storage): ~5 ms less per asset.
        "run_storage": _storage("dagster._core.storage.runs", "SqliteRunStorage", storage / "history"),
        "event_log_storage": _storage("stacks.dagster_storage", "SlipwayEventLogStorage", storage / "history" / "runs"),
        "schedule_storage": _storage("dagster._core.storage.schedules", "SqliteScheduleStorage", storage / "schedules"),
        "local_artifact_storage": {
            "module": "dagster._core.storage.root",
            "class": "LocalArtifactStorage",
            "config": {"base_dir": str(base)},
        },
    }
    # Model assets sit in a pool of their own (assets.model_asset.pool_name): one training per
    # registered model at a time, whichever way its runs are launched on this instance.
    config["concurrency"] = {"pools": {"default_limit": 1, "granularity": "op"}}
    if not stack.instance.capture_compute_logs:
        # The default manager starts a `tail -F` per step to capture stdout; the event log
        # (context.log, metadata) is kept either way.
        config["compute_logs"] = {
            "module": "dagster._core.storage.noop_compute_log_manager",
            "class": "NoOpComputeLogManager",
        }
    return config


def _storage(module: str, name: str, base_dir: Path) -> dict[str, Any]:
    return {"module": module, "class": name, "config": {"base_dir": str(base_dir)}}


def prepare_instance(stack: StackFields) -> Path:
    """Write the instance's ``dagster.yaml`` and create its storage when new; return DAGSTER_HOME.

    Several processes may start on a new home at once (`slipway run` beside the UI's webserver
    and daemon, or CI jobs sharing a home), and SQLite schema creation is not safe from two at
    once ("table ... already exists"). So the file is replaced atomically, and the storage is
    created under a lock beside it, once per configuration (a marker records which).
    """
    import hashlib

    home = Path(stack.instance.base_dir)
    home.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(instance_config(stack), sort_keys=True)
    target = home / "dagster.yaml"
    marker = home / "storage" / ".slipway-created"  # deleted with the storage it stands for
    created = hashlib.sha256(text.encode()).hexdigest()[:24]
    if _read(target) == text and _read(marker) == created:
        return home
    with (home / ".slipway-instance.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if _read(target) != text:
            scratch = home / f".dagster.yaml.{os.getpid()}"
            scratch.write_text(text)
            os.replace(scratch, target)
        if _read(marker) != created:
            import dagster as dg

            with dg.DagsterInstance.from_config(str(home)) as instance:
                # Each storage creates its schema when it is first built.
                instance.run_storage, instance.event_log_storage, instance.schedule_storage  # noqa: B018
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(created)
    return home


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
