"""Retraining by policy: the ``slipway_retrain`` sensor.

A model with a ``retrain`` block (:class:`assets.spec.schedules.Retrain`) retrains by itself when its
input has data it was not trained on and a trigger allows it:

- ``on_new_data``: at once;
- ``on_drift``: when that data has drifted from the data the champion was trained on (evaluated
  once per data version: an observation on the model with the score and a link to the HTML
  report in MLflow, and an alert when it drifted);
- ``schedule``: at the first cron tick (UTC) after such data first arrived.

``cooldown`` and ``max_per_day`` hold a trigger back: it waits, and the sensor says until when.
So do a run of the model or its input in progress, and an input failing a blocking check.
A retraining is requested with the run key ``slipway-retrain:<model>:<input data versions>``, so
a data version retrains a model once, whichever trigger fired and however many ticks saw it;
its run carries the trigger and the reason as tags, which the training copies to MLflow.

Without a ``retrain`` block a model never retrains by itself on new data: the automation sensor
rebuilds it only for what git changed (its definition, a new input, or a definition upstream
whose change made its input's data new: :func:`changed_in_git`) or a lost output
(:class:`GitChange`), and ``slipway run``, asked by a person, rebuilds whatever is out of date.

A tick reads the instance's record once (no data is loaded) unless a model's input has a data
version not yet evaluated for drift.

Each tick says what it decided, a line per model (``shop/clf: retrain: drift: psi 0.45 ...``),
in three places of the Dagster UI: the tick's log ("View logs"), its skip reason when it
requested nothing, and its cursor. The cursor is the one text a tick's row shows without a
click, and the daemon keeps no skip reason for a tick that requested runs; this sensor keeps
no state in it (drift verdicts are kept in the instance, :mod:`assets.automation.drift_watch`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.automation.rebuild import Record, failed_blocking_checks, record_for, running_assets
from assets.automation.staleness import DATA_VERSION_TAG, Reason, Why, said
from assets.spec.policy import Policy, policies
from assets.spec.schedules import Retrain, schedule_due, when
from assets.spec.tags import REASON_TAG, TRIGGER_TAG
from assets.spec.versions import combine

RUN_KEY_PREFIX = "slipway-retrain"
STATE_PREFIX = "slipway/retrain-drift/"
DAY = 86400.0
# The tick's text (its cursor) is kept with every tick: a long one ends with how many lines it left out.
TICK_TEXT_LIMIT = 1000
clock = time.time  # the sensor's clock (tests move it forward)


@dataclass
class Decision:
    """What the sensor does about one model on one tick."""

    asset: str
    action: str  # "retrain", "wait" or "idle"
    message: str
    trigger: str | None = None
    run_key: str | None = None


@dataclass(frozen=True)
class DriftVerdict:
    """The drift of one data version of a model's input from its champion's training data."""

    data_version: str
    evaluated: bool
    drifted: bool
    summary: str
    score: float | None = None
    report: str | None = None

    def to_json(self) -> str:  # noqa: D102
        return json.dumps(self.__dict__, sort_keys=True)

    @staticmethod
    def from_json(text: str | None) -> DriftVerdict | None:  # noqa: D102
        try:
            data = json.loads(text) if text else None
            return DriftVerdict(**data) if isinstance(data, dict) else None
        except (TypeError, ValueError):
            return None


def only_new_data(reasons: Iterable[Reason]) -> bool:
    """True when every reason is an input's new data (what the retrain policy decides about)."""
    reasons = list(reasons)
    return bool(reasons) and all(r.why is Why.NEW_DATA for r in reasons)


class GitChange(dg.AutomationCondition):
    """True unless a model's only reasons to rebuild are new input data: those wait for its retrain policy.

    Data that changed because a definition upstream changed in git (:func:`changed_in_git`) is
    a git change, and an output lost from the stores is rebuilt whatever the data did.
    """

    def __init__(self, stores: Any = None) -> None:
        """``stores``: as the rebuild predicate's (:class:`~assets.automation.rebuild.OutOfDate`)."""
        self.stores = stores

    @property
    def requires_cursor(self) -> bool:  # noqa: D102
        return False

    @property
    def name(self) -> str:  # noqa: D102
        return "not only new data"

    @property
    def description(self) -> str:  # noqa: D102
        return "rebuilt for what git changed (upstream too) or a lost output; new data waits for the retrain policy"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:  # noqa: D102
        record = record_for(context)
        key = context.key  # type: ignore[assignment]
        reasons = record.reasons(key, self.stores)  # type: ignore[arg-type]
        if only_new_data(reasons) and record.lost(key, self.stores) is None and changed_in_git(record, key) is None:  # type: ignore[arg-type]
            return dg.AutomationResult(context, context.get_empty_subset(), metadata={"waits": "the retrain policy"})
        return dg.AutomationResult(context, context.candidate_subset)


def changed_in_git(record: Record, key: dg.AssetKey, limit: int = 50) -> str | None:
    """Which upstream definition change made ``key``'s input data new (``"shop/feats changed in git"``), or None.

    For each input whose data version differs from the one ``key`` was built with, the
    materialization that made the new version is compared with the one that made the old:
    another code version is a change in git; otherwise each of its inputs that changed is
    followed up the graph, to an observed source (new data, not git). Only the last ``limit``
    materializations of an asset are searched; older history counts as new data.
    """
    built = record.built(key)
    if built is None:
        return None
    seen: set[tuple[dg.AssetKey, str]] = set()

    def made(asset: dg.AssetKey, version: str) -> Any:
        return _materialization_with(record.instance, asset, version, limit)

    def walk(asset: dg.AssetKey, old: str, new: str, depth: int) -> str | None:
        if depth > 25 or (asset, new) in seen or not record.graph.has(asset):
            return None
        seen.add((asset, new))
        if not record.graph.get(asset).is_materializable:
            return None  # an observed source: new data
        after, before = made(asset, new), made(asset, old)
        if after is None or before is None:
            return None
        if after.code_version != before.code_version:
            return f"{asset.to_user_string()} changed in git"
        for name, version in after.inputs.items():
            earlier = before.inputs.get(name)
            if earlier is not None and earlier != version:
                found = walk(dg.AssetKey.from_user_string(name), earlier, version, depth + 1)
                if found:
                    return found
        return None

    for name, current in record.inputs(key).items():
        trained = built.inputs.get(name)
        if current is not None and trained is not None and trained != current:
            found = walk(dg.AssetKey.from_user_string(name), trained, current, 0)
            if found:
                return found
    return None


def _materialization_with(instance: Any, asset: dg.AssetKey, version: str, limit: int) -> Any:
    """The latest of ``asset``'s last ``limit`` materializations that made data version ``version``, or None."""
    from assets.automation.staleness import Built

    for item in instance.fetch_materializations(asset, limit=limit).records:
        tags = (item.asset_materialization.tags or {}) if item.asset_materialization else {}
        if tags.get(DATA_VERSION_TAG) == version:
            return Built.of(item)
    return None


class Tick:
    """One evaluation of every retrain policy against the instance's record."""

    def __init__(self, instance: dg.DagsterInstance, graph: Any, now: float | None = None) -> None:
        """Over the code location's asset ``graph``; ``now`` defaults to the clock."""
        self.instance = instance
        self.graph = graph
        self.now = clock() if now is None else now
        self.record = Record(instance, graph)
        self._running: set[dg.AssetKey] | None = None

    def running(self, key: dg.AssetKey) -> bool:
        """True when an unfinished run targets ``key`` or one of its inputs."""
        if self._running is None:
            self._running = running_assets(self.instance)
        return bool({key, *self.graph.get(key).parent_keys} & self._running)

    def _blocking(self, key: dg.AssetKey) -> str | None:
        """The first input of ``key`` whose blocking checks fail, said; None when none does."""
        for parent in sorted(self.graph.get(key).parent_keys, key=lambda k: k.to_user_string()):
            failed = failed_blocking_checks(self.instance, self.graph, parent)
            if failed:
                return f"{parent.to_user_string()} failed its blocking checks ({', '.join(failed)})"
        return None

    def decide(self, policy: Policy, drift: Any = None) -> Decision:
        """What to do about ``policy``'s model; ``drift(policy, data_version)`` evaluates drift when asked.

        ``drift`` returns a :class:`DriftVerdict` (evaluating and recording it once per data
        version); None: drift is not evaluated on this tick.
        """
        key = dg.AssetKey.from_user_string(policy.asset)
        built = self.record.built(key)
        if built is None:
            return Decision(policy.asset, "idle", "never built: the automation sensor builds it")
        from assets.automation.served_drift import served_drift

        served = served_drift(self, policy, built, drift)  # None unless on_drift.served fires
        if served is not None:
            return served
        reasons = self.record.reasons(key, None)
        if not reasons:
            return Decision(policy.asset, "idle", "trained on the newest data")
        if not only_new_data(reasons):
            return Decision(policy.asset, "idle", f"{said(reasons)}: the automation sensor rebuilds it")
        upstream = changed_in_git(self.record, key)
        if upstream is not None:
            return Decision(policy.asset, "idle", f"{upstream}; the automation sensor rebuilds it")
        if self.running(key):
            return Decision(policy.asset, "wait", f"{said(reasons)}; waits: a run of it or its input is in progress")
        blocking = self._blocking(key)
        if blocking is not None:
            return Decision(policy.asset, "wait", f"{said(reasons)}; waits: {blocking}")
        inputs = self.record.inputs(key)
        digest = combine(*(f"{k}={v}" for k, v in sorted(inputs.items())))
        retrain = policy.retrain
        triggers: list[tuple[str, str]] = []
        waiting: list[str] = []
        if retrain.on_new_data:
            triggers.append(("new_data", said(reasons)))
        if retrain.on_drift is not None and not retrain.on_drift.served:
            fired, wait = _drift_trigger(policy, inputs.get(policy.dataset), built, drift)
            triggers += [("drift", fired)] if fired else []
            waiting += [wait] if wait else []
        if retrain.schedule is not None:
            due, tick = schedule_due(retrain.schedule, self._arrived(key, built), self.now)
            if due and tick is not None:
                triggers.append(("schedule", f"schedule {retrain.schedule!r} ticked at {when(tick)}"))
            else:
                waiting.append(f"the next tick of {retrain.schedule!r}")
        if not triggers:
            nothing = ", ".join(waiting) or "none declared"
            return Decision(policy.asset, "idle", f"{said(reasons)}; no trigger: {nothing}")
        trigger, why = triggers[0]
        held = self.held(key, retrain, built.timestamp)
        if held:
            return Decision(policy.asset, "wait", f"{trigger} ({why}) waits for {held}", trigger)
        run_key = f"{RUN_KEY_PREFIX}:{policy.asset}:{digest}"
        return Decision(policy.asset, "retrain", f"{trigger}: {why}", trigger, run_key)

    def _arrived(self, key: dg.AssetKey, built: Any) -> float:
        """When data the model was not trained on first arrived: the earliest such materialization of an input."""
        first = self.now
        for parent in self.graph.get(key).parent_keys:
            trained = built.inputs.get(parent.to_user_string())
            records = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=parent, after_timestamp=built.timestamp), limit=100, ascending=True
            ).records
            for item in records:
                tags = (item.asset_materialization.tags or {}) if item.asset_materialization else {}
                if tags.get(DATA_VERSION_TAG) != trained:
                    first = min(first, item.timestamp)
                    break
        return first

    def held(self, key: dg.AssetKey, retrain: Retrain, trained_at: float) -> str | None:
        """What holds a triggered retraining back: the cooldown or the daily limit (with until when), else None."""
        if retrain.cooldown and self.now < trained_at + retrain.cooldown_seconds:
            until = when(trained_at + retrain.cooldown_seconds)
            return f"the cooldown ({retrain.cooldown} after the training at {when(trained_at)}) until {until}"
        if retrain.max_per_day:
            records = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_timestamp=self.now - DAY), limit=retrain.max_per_day + 100
            ).records  # newest first
            if len(records) >= retrain.max_per_day:
                # The window holds fewer than the limit once the limit-th newest training is a day old.
                until = when(records[retrain.max_per_day - 1].timestamp + DAY)
                many = f"{len(records)}{'+' if len(records) > retrain.max_per_day + 99 else ''}"
                return (
                    f"max_per_day ({many} trainings in the last 24 hours, at most {retrain.max_per_day}) until {until}"
                )
        return None


def _drift_trigger(policy: Policy, current: str | None, built: Any, drift: Any) -> tuple[str | None, str | None]:
    """(why drift fires, None) or (None, why it does not) for the model's training input at ``current``."""
    if current is None or current == built.inputs.get(policy.dataset):
        # Only another input (an evaluation set) is new: the training data was trained on.
        return None, f"drift (no new data in {policy.dataset})"
    verdict = drift(policy, current) if drift is not None else None
    if verdict is None:
        return None, "drift not evaluated yet"
    if verdict.drifted:
        return verdict.summary, None
    if verdict.evaluated:
        return None, f"drift below threshold ({verdict.summary})"
    return None, f"drift {verdict.summary}"


def run_request(policy: Policy, decision: Decision) -> dg.RunRequest:
    """The run of one retraining: the model alone, keyed by its input data versions, tagged with why."""
    return dg.RunRequest(
        run_key=decision.run_key,
        asset_selection=[dg.AssetKey.from_user_string(policy.asset)],
        tags={TRIGGER_TAG: decision.trigger or "", REASON_TAG: decision.message[:1000]},
    )


def earlier_run(instance: dg.DagsterInstance, run_key: str) -> Any:
    """The run already launched for ``run_key`` (the daemon launches a run key once), or None."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1)
    return runs[0] if runs else None


def evaluate(context: dg.SensorEvaluationContext, now: float | None = None) -> dg.SensorResult:
    """One tick of the retrain sensor: a run request per model to retrain, observations of drift, a line per model.

    The lines are the tick's text (:func:`tick_text`): its cursor, and its skip reason when it
    requests nothing.
    """
    from assets.automation.drift_watch import DriftWatch

    graph = context.repository_def.asset_graph  # type: ignore[union-attr]
    found = policies(graph)
    if not found:
        none = "no model declares a retrain policy"
        context.log.info(none)
        return dg.SensorResult(skip_reason=none, cursor=none)
    tick = Tick(context.instance, graph, now)
    watch = DriftWatch(context.instance, context.resources, context.log)
    runs, lines = [], []
    for policy in found:
        try:
            decision = tick.decide(policy, watch)
        except Exception as exc:  # one model's problem must not stop every other model's policy
            from resources.redact import redact

            message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            decision = Decision(policy.asset, "error", f"not evaluated: {type(exc).__name__}: {message}")
        if decision.action == "retrain" and decision.run_key is not None:
            earlier = earlier_run(context.instance, decision.run_key)
            if earlier is not None:
                status = earlier.status.value.lower()
                said = (
                    "a retraining for this data failed"
                    if earlier.status == dg.DagsterRunStatus.FAILURE
                    else "already retrained for this data"
                )
                decision = Decision(
                    policy.asset,
                    "idle",
                    f"{said} (run {earlier.run_id[:8]}, {status}); a new data version or `slipway run` trains it again",
                )
        line = f"{decision.asset}: {decision.action}: {decision.message}"
        lines.append(line)
        (context.log.warning if decision.action == "error" else context.log.info)(line)
        if decision.action == "retrain":
            runs.append(run_request(policy, decision))
    if runs:
        # What was requested first: a row shows the start of the text.
        requested = [line for line in lines if ": retrain: " in line]
        text = tick_text([*requested, *(line for line in lines if line not in requested)])
        return dg.SensorResult(run_requests=runs, cursor=text)
    return dg.SensorResult(skip_reason=" | ".join(lines), cursor=tick_text(lines))


def tick_text(lines: list[str]) -> str:
    """The tick's lines as one text of at most about :data:`TICK_TEXT_LIMIT` characters (whole lines)."""
    text = " | ".join(lines)
    if len(text) <= TICK_TEXT_LIMIT:
        return text
    room = TICK_TEXT_LIMIT - 40  # for "| and N more (View logs)"
    kept = [lines[0] if len(lines[0]) <= room else lines[0][:room] + "…"]
    for line in lines[1:]:
        if len(" | ".join([*kept, line])) > room:
            break
        kept.append(line)
    return " | ".join(kept) + f" | and {len(lines) - len(kept)} more (View logs)"
