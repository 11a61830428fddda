"""What a run's event log says about each asset it ran: built, failed, interrupted, blocked, checks.

Read by event type (:class:`dagster.DagsterEventType`) and Dagster's serialized errors, from the
instance alone, so a run launched in this process, in step processes or by the UI reads the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

from definitions.cli.outcomes import AssetOutcome
from resources.artifacts import ARTIFACT_STORE_ERROR


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


_STEP_ENDS = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)


def step_seconds(entries: Any, groups: dict[str, str] | None = None) -> dict[str, float]:
    """Wall time of each step, from its start event to its success or failure event.

    ``groups`` maps step keys to one name (a sweep's trial steps and its train step, to the
    model's): its time is from the first of them starting to the last ending.
    """
    groups = groups or {}
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        name = groups.get(entry.step_key, entry.step_key)
        if event.event_type == dg.DagsterEventType.STEP_START:
            started.setdefault(name, entry.timestamp)
        elif event.event_type in _STEP_ENDS and name in started:
            ended[name] = entry.timestamp
    return {name: round(ended[name] - started[name], 3) for name in ended}


def with_checks(outcome: AssetOutcome, checks: list[str], built: str | None) -> None:
    """Fold failed check names into an outcome: a failed blocking check fails the asset.

    ``built`` is the detail of what the asset materialized in this run (None: nothing).
    """
    names = f"check failed: {', '.join(checks)}"
    if any(not c.endswith("(warning)") for c in checks):
        # Either the data was refused before it was stored (a dataset) or the version was
        # materialized for audit but is not served (a model): the check names say why.
        outcome.status = "failed"
        outcome.detail = f"{names}; {built}" if built is not None else f"{names}; not stored"
    else:
        outcome.detail = f"{names}; {outcome.detail}".rstrip("; ")


def interrupted(data: Any) -> bool:
    """True when a step failed because the run was interrupted (Ctrl-C), not by an error of its own."""
    source = getattr(data.error_source, "value", data.error_source)
    return source == "INTERRUPT" or getattr(data.error, "cls_name", None) == "DagsterExecutionInterruptedError"


def interrupted_run(run: Any, failed: Any) -> bool:
    """True when this command's run ended because it was interrupted (a step's failure, or Dagster's own reason).

    Dagster records an interruption that no termination request explains as an unexpected termination.
    """
    if any(interrupted(entry.dagster_event.step_failure_data) for entry in failed):
        return True
    return run.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"


def failure(data: Any) -> str:
    """One line for a step failure: the user's error, or the interruption."""
    if interrupted(data):
        return "interrupted; the last version built stays in use, and the next run builds it if it is out of date"
    source = getattr(data.error_source, "value", data.error_source)
    error = data.error
    # A user-code error is wrapped by Dagster once; its cause is the user's exception.
    if source == "USER_CODE_ERROR" and error.cause is not None:
        error = error.cause
    return one_line(error.message) or error.cls_name


def one_line(message: str | None) -> str:
    """The first line of an error message, without the exception class name Dagster adds."""
    first = (message or "").strip().splitlines()[0] if message and message.strip() else ""
    head, sep, rest = first.partition(": ")
    return rest if sep and "." in head and " " not in head else first


def from_metadata(outcome: AssetOutcome, metadata: Any) -> None:
    """What an asset's materialization metadata says for its row: data version, model version, alias, metrics."""
    outcome.data_version = _value(metadata.get("data_version"))
    if "mlflow_run" in metadata:
        outcome.mlflow_run = _value(metadata["mlflow_run"])
        outcome.model_version = str(_value(metadata["model_version"]))
        outcome.registered_model = _value(metadata.get("registered_model"))
        alias = _value(metadata.get("alias"))
        outcome.alias = None if alias == "none" else alias
        champion = _value(metadata.get("champion_version"))  # the version serving then (a challenger's)
        outcome.champion = None if champion is None else str(champion)
        outcome.detail = _value(metadata.get("promotion")) or ""
        outcome.metrics = {k.removeprefix("metric_"): _value(v) for k, v in metadata.items() if k.startswith("metric_")}
    elif "rows" in metadata and "model_uri" in metadata:  # a predictions table: which version scored it
        scorer = f"{_value(metadata['registered_model'])} v{_value(metadata['model_version'])}"
        outcome.detail = f"{_value(metadata.get('rows'))} rows scored by {scorer} ({_value(metadata['alias'])})"
    elif "rows" in metadata:
        outcome.detail = f"{_value(metadata.get('rows'))} rows"


def materialized(outcome: AssetOutcome, materialization: Any, run_id: str) -> None:
    """Mark ``outcome`` built by run ``run_id``, with what its materialization says."""
    outcome.status = "built"
    outcome.dagster_run_id = run_id
    from_metadata(outcome, materialization.metadata)


def has_error(entry: Any) -> bool:
    """True when an event log entry carries a serialized error with a message."""
    data = getattr(entry.dagster_event, "event_specific_data", None)
    return getattr(getattr(data, "error", None), "message", None) is not None


def failed_on_a_store(failures: Any) -> set[str]:
    """The step keys whose failure is a store settling needs, which Slipway could not reach or use.

    That is a ``ResourceError`` of the tracker or registry. The artifact store is not one: when
    only it failed (S3 down after the version was registered), MLflow answers, and the version
    is settled at once instead of staying registered until the next run.
    """
    found = set()
    for entry in failures:
        error = entry.dagster_event.step_failure_data.error
        while error is not None:
            own = error.message.partition(": ")[2]  # the message after the class name
            if error.cls_name == "ResourceError" and not own.startswith(ARTIFACT_STORE_ERROR):
                found.add(entry.step_key)
                break
            error = error.cause
    return found


def steps_of(graph: Any, key: dg.AssetKey) -> list[str]:
    """Every step key of ``key``'s op or graph (a sweep: each trial's, then ``train``)."""
    node = graph.get(key).assets_def.node_def
    if isinstance(node, dg.GraphDefinition):
        return [f"{node.name}.{inner.name}" for inner in node.nodes]
    return [node.name]


def step_of(graph: Any, key: dg.AssetKey) -> str:
    """The step key of the op that outputs ``key`` (its op's name; in a sweep's graph, ``graph.train``)."""
    assets_def = graph.get(key).assets_def
    if isinstance(assets_def.node_def, dg.GraphDefinition):
        output = assets_def.get_output_name_for_asset_key(key)
        return f"{assets_def.node_def.name}.{assets_def.node_def.resolve_output_to_origin(output, None)[1]}"
    return assets_def.node_def.name


def read_outcomes(
    instance: dg.DagsterInstance,
    graph: Any,
    run_id: str,
    keys: Sequence[dg.AssetKey],
    reasons: dict[dg.AssetKey, str],
    kind_of: Callable[[dg.AssetKey], str],
) -> dict[dg.AssetKey, AssetOutcome]:
    """What happened to each of ``keys`` in run ``run_id``, from the event log alone."""
    by_step: dict[str, list[dg.AssetKey]] = {}
    groups: dict[str, str] = {}  # a sweep's steps, timed as one: the step that outputs its model
    for key in keys:
        main = step_of(graph, key)
        for step in steps_of(graph, key):
            by_step.setdefault(step, []).append(key)
            groups[step] = main
    outcomes = {k: AssetOutcome(k.to_user_string(), kind_of(k), "not run", reason=reasons.get(k, "")) for k in keys}
    built: dict[dg.AssetKey, str] = {}  # key -> the detail of what it built
    failed_checks: dict[dg.AssetKey, list[str]] = {}
    entries = instance.all_logs(run_id)
    for step, seconds in step_seconds(entries, groups).items():
        for key in by_step.get(step, []):
            outcomes[key].seconds = seconds
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and event.asset_key in outcomes:
            materialized(outcomes[event.asset_key], event.step_materialization_data.materialization, run_id)
            built[event.asset_key] = outcomes[event.asset_key].detail
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.asset_check_evaluation_data
            if data.passed:
                continue
            failed_checks.setdefault(data.asset_key, []).append(check_label(graph, data))
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            for key in by_step.get(entry.step_key or "", []):
                outcomes[key].status = "interrupted" if interrupted(event.step_failure_data) else "failed"
                outcomes[key].detail = failure(event.step_failure_data)
    for key, checks in failed_checks.items():
        if key in outcomes:
            with_checks(outcomes[key], checks, built.get(key))
    _mark_blocked(graph, outcomes, keys)
    return outcomes


def check_label(graph: Any, data: Any) -> str:
    """A failed check's name, marked "(warning)" unless it blocks (a blocking check of severity ERROR)."""
    key = dg.AssetCheckKey(data.asset_key, data.check_name)
    blocking = key in graph.asset_check_keys and graph.get(key).blocking
    blocks = blocking and data.severity == dg.AssetCheckSeverity.ERROR
    return data.check_name if blocks else f"{data.check_name} (warning)"


def _mark_blocked(graph: Any, outcomes: dict[dg.AssetKey, AssetOutcome], keys: Sequence[dg.AssetKey]) -> None:
    """Mark each of ``keys`` not run blocked when an upstream in the same run failed or was blocked (upstream first)."""
    for key in keys:
        if outcomes[key].status != "not run":
            continue
        for parent in sorted(graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            upstream = outcomes.get(parent)
            if upstream is not None and upstream.status in ("failed", "interrupted", "blocked"):
                outcomes[key].status = "blocked"
                outcomes[key].detail = f"{upstream.key} {upstream.status}"
                break
