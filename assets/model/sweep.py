"""A model's sweep at run time: each trial trained and scored as a step of its own, then the winner chosen.

A trial trains the model with its params on the model's split (or evaluation set), scores it, and
records one MLflow run (its params, metrics and status). That run is its cache: its
``slipway.trial_key`` is the hash of the model's definition and code without the sweep, the
trial's params and the data versions it trained on, so a trial whose run finished with the same
key is not trained again (adding two grid points trains two trials; a failed trial is tried again
alone). A trial's error fails the trial, not its step: the sweep step then counts the trials that
succeeded against ``min_success_ratio``, picks the best by ``select`` and hands its params to the
model's training, which registers the version and goes through the gates and the champion
comparison like any training. The trials trained by the run are nested under that training's
MLflow run (the sweep's parent run).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from assets.model import training
from assets.spec.model_spec import Model
from assets.spec.sweep_spec import Trial, expand
from assets.spec.tags import TRIGGER_TAG
from assets.spec.versions import code_version, frame_version
from resources.errors import DataError, ResourceError
from resources.redact import redact
from resources.tracker import ExperimentTracker, FoundRun

SWEEP_TAG = "slipway.sweep"  # the registered model's name, on every trial run
CONTEXT_TAG = "slipway.sweep_context"  # definition, code and data the trials share
TRIAL_TAG = "slipway.trial"  # the trial's id
TRIAL_KEY_TAG = "slipway.trial_key"
ERROR_TAG = "slipway.trial_error"
WINNER_TAG = "slipway.sweep.params"  # the winning params (JSON), on the training run and its version
WINNER_OF_TAG = "slipway.sweep.of"  # the registered model's name, on the training run of a sweep
DAGSTER_RUN_TAG = "slipway.dagster_run_id"
DEFINITION_TAG = "slipway.definition_hash"  # the model's code version, on its training runs
PARENT_TAG = "mlflow.parentRunId"  # MLflow's UI nests a run under this one
PLOT_FILE = "sweep/scores.html"


# The best model each sweep's trials fitted in this process: context key -> (trial key, score, model).
# On the in-process executor the winner's step then registers the very model its trial scored
# instead of fitting it again; in a process of its own (multiprocess, k8s) it fits the winner's params.
_held: dict[str, tuple[str, float, Any]] = {}
_held_lock = threading.Lock()


def hold(shared: str, key: str, score: float, higher: bool, model: Any) -> None:
    """Keep ``model`` (trial ``key``'s) if it scored better than the best this process holds for the sweep."""
    with _held_lock:
        best = _held.get(shared)
        if best is None or (score > best[1] if higher else score < best[1]):
            _held[shared] = (key, score, model)


def take(found: FoundRun | None) -> Any | None:
    """The model the trial run ``found`` fitted, if this process holds it (once: it is let go)."""
    if found is None:
        return None
    shared, key = found.tags.get(CONTEXT_TAG, ""), found.tags.get(TRIAL_KEY_TAG)
    with _held_lock:
        best = _held.pop(shared, None)
    return best[2] if best is not None and best[0] == key else None


def context_key(spec: Model, data_versions: list[str]) -> str:
    """What every trial of this definition, code and data shares (the trial's id completes its key)."""
    text = json.dumps([code_version("model", spec.trained_as({})), data_versions])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def data_versions(frame: Any, evaluation: Any) -> list[str]:
    """The versions of the tables a trial reads."""
    return [frame_version(frame), *([frame_version(evaluation)] if evaluation is not None else [])]


def retrains_alone(spec: Model, run_tags: dict[str, str]) -> bool:
    """True when this run is a retrain by policy and the model says to train its last winner alone."""
    return bool(run_tags.get(TRIGGER_TAG)) and spec.retrain is not None and not spec.retrain.sweep


def last_winner(tracker: ExperimentTracker, pipeline: str, registry_name: str, spec: Model) -> dict[str, Any] | None:
    """The winning params of the model's latest finished sweep of this very definition, None when there is none.

    A sweep of another definition (edited since) does not count: its winner may name params the
    sweep no longer has, or values outside it, so the sweep runs again.
    """
    assert spec.sweep is not None
    version = code_version("model", spec)
    for found in tracker.find_runs(pipeline, {WINNER_OF_TAG: registry_name, DEFINITION_TAG: version}):
        if found.status == "FINISHED" and WINNER_TAG in found.tags:
            params = json.loads(found.tags[WINNER_TAG])
            if isinstance(params, dict) and set(params) == set(spec.sweep.params):
                return params
    return None


@dataclass(frozen=True)
class TrialStep:
    """What one trial's step needs beyond its frames."""

    pipeline: str
    name: str
    registry_name: str
    spec: Model
    trial: Trial
    where: str


def run_trial(
    step: TrialStep, context: Any, frame: Any, evaluation: Any, tracker: ExperimentTracker, allowed: Any
) -> str:
    """Train and score one trial unless a finished run already has its key; return what happened.

    ``trained``, ``cached`` or ``failed: …`` (the trial's own error: the step succeeds) or
    ``skipped`` (a retrain that trains the last winner alone). A store that cannot be reached
    raises: the step fails, and the sweep with it.
    """
    spec, trial = step.spec, step.trial
    if retrains_alone(spec, dict(context.run.tags)) and last_winner(tracker, step.pipeline, step.registry_name, spec):
        return "skipped"
    shared = context_key(spec, data_versions(frame, evaluation))
    key = f"{shared}-{trial.id}"
    if any(f.status == "FINISHED" for f in tracker.find_runs(step.pipeline, {TRIAL_KEY_TAG: key})):
        return "cached"
    tags = {
        SWEEP_TAG: step.registry_name,
        CONTEXT_TAG: shared,
        TRIAL_TAG: trial.id,
        TRIAL_KEY_TAG: key,
        DAGSTER_RUN_TAG: context.run.run_id,
        "slipway.trial_params": json.dumps(trial.params, sort_keys=True),
    }
    started = int(time.time() * 1000)
    where = f"{step.where}, trial {trial.id} ({trial.label})"
    own = spec.trial(trial.params)
    try:
        trained = training.train(frame, own, training.learner(own, allowed, where), where, evaluation)
    except ResourceError:
        raise
    except Exception as exc:  # the trial's own failure: recorded, and tried again by the next sweep
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        error = redact(f"{type(exc).__name__}: {first}")[:500]
        run = tracker.start_run(step.pipeline, f"{step.name}-trial-{trial.id}", {**tags, ERROR_TAG: error}, started)
        tracker.log(run, trial.params, {}, {})
        tracker.end_run(run, ok=False)
        return f"failed: {error}"
    run = tracker.start_run(step.pipeline, f"{step.name}-trial-{trial.id}", tags, started)
    tracker.log(run, trained.params, trained.metrics, {})
    tracker.end_run(run, ok=True)
    metric, higher = spec.winner_metric
    if math.isfinite(trained.metrics.get(metric, math.nan)):
        hold(shared, key, trained.metrics[metric], higher, trained.model)
    return "trained"


@dataclass(frozen=True)
class TrialResult:
    """One trial as the sweep step found it in the tracker."""

    trial: Trial
    status: str  # trained | cached | failed
    score: float | None
    run: FoundRun | None
    error: str | None = None


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: every trial, the winner, and what the note on the training says."""

    results: list[TrialResult]
    winner: TrialResult | None  # None: a retrain training the last winner's params alone
    params: dict[str, Any]  # the winning params
    metric: str
    higher: bool
    note: str | None

    @property
    def counts(self) -> str:
        """``24 trials: 22 trained, 2 cached, 0 failed``."""
        by = {s: sum(r.status == s for r in self.results) for s in ("trained", "cached", "failed")}
        return f"{len(self.results)} trials: {by['trained']} trained, {by['cached']} cached, {by['failed']} failed"


def collect(
    spec: Model,
    pipeline: str,
    registry_name: str,
    frame: Any,
    evaluation: Any,
    tracker: ExperimentTracker,
    run_tags: dict[str, str],
    run_id: str,
) -> SweepResult:
    """Read every trial's run, check the success ratio, and choose the winner.

    :class:`DataError` when fewer trials succeeded than ``min_success_ratio`` asks, with their
    errors summarised (the same error once, with how many trials had it).
    """
    assert spec.sweep is not None
    metric, higher = spec.winner_metric
    if retrains_alone(spec, run_tags):
        params = last_winner(tracker, pipeline, registry_name, spec)
        if params is not None:
            return SweepResult([], None, params, metric, higher, "a retrain training the last winner's params alone")
    expansion = expand(spec.sweep)
    shared = context_key(spec, data_versions(frame, evaluation))
    runs: dict[str, list[FoundRun]] = {}
    for found in tracker.find_runs(pipeline, {CONTEXT_TAG: shared}):
        runs.setdefault(found.tags.get(TRIAL_TAG, ""), []).append(found)
    results = []
    for trial in expansion.trials:
        mine = runs.get(trial.id, [])
        done = next((f for f in mine if f.status == "FINISHED"), None)
        if done is not None and math.isfinite(done.metrics.get(metric, math.nan)):
            status = "trained" if done.tags.get(DAGSTER_RUN_TAG) == run_id else "cached"
            results.append(TrialResult(trial, status, done.metrics[metric], done))
        else:
            last = mine[0] if mine else None
            error = last.tags.get(ERROR_TAG, "its run did not finish") if last is not None else "it did not run"
            if done is not None:
                error = f"its {metric} is {done.metrics.get(metric, 'missing')}"
            results.append(TrialResult(trial, "failed", None, last, error))
    succeeded = [r for r in results if r.score is not None]
    ratio = spec.sweep.min_success_ratio
    if not any(runs.values()) and tracker.find_runs(pipeline, {SWEEP_TAG: registry_name, DAGSTER_RUN_TAG: run_id}):
        raise DataError(
            "the sweep's trials ran on other data than its train step read (the dataset was built again "
            "meanwhile); run the model again"
        )
    if not succeeded or len(succeeded) < needed(ratio, len(results)):
        raise DataError(_too_few(results, succeeded, ratio))
    best = max(succeeded, key=lambda r: float(r.score or 0.0) if higher else -float(r.score or 0.0))
    return SweepResult(results, best, best.trial.params, metric, higher, expansion.note)


def needed(ratio: float, trials: int) -> int:
    """How many of ``trials`` must succeed for ``ratio`` (0.55 of 100 is 55, not 56 by float rounding)."""
    return max(1, math.ceil(round(ratio * trials, 9)))


def _too_few(results: list[TrialResult], succeeded: list[TrialResult], ratio: float) -> str:
    errors: dict[str, list[str]] = {}
    for r in results:
        if r.score is None:
            errors.setdefault(r.error or "unknown", []).append(r.trial.id)
    said = "; ".join(
        f"{len(ids)} trial{'s' if len(ids) > 1 else ''} ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''}): {error}"
        for error, ids in sorted(errors.items(), key=lambda item: -len(item[1]))
    )
    return (
        f"the sweep failed: {len(succeeded)} of {len(results)} trials succeeded, min_success_ratio {ratio} "
        f"needs {needed(ratio, len(results))}; {said}"
    )


def tags_of(result: SweepResult, registry_name: str) -> dict[str, str]:
    """The tags of the sweep's training run (and so of its registered version)."""
    tags = {WINNER_TAG: json.dumps(result.params, sort_keys=True), WINNER_OF_TAG: registry_name}
    if result.winner is not None:
        tags["slipway.sweep.trials"] = result.counts
        tags["slipway.sweep.winner_trial"] = result.winner.trial.id
        if result.winner.run is not None:
            tags["slipway.sweep.winner_run"] = result.winner.run.run.run_id
    return tags


def report(result: SweepResult) -> dict[str, Any]:
    """The sweep as JSON: each trial's params, status, score and run (the training run's ``sweep/trials.json``)."""
    return {
        "metric": result.metric,
        "mode": "max" if result.higher else "min",
        "note": result.note,
        "winner": result.winner.trial.id if result.winner else None,
        "params": result.params,
        "trials": [
            {
                "trial": r.trial.id,
                "params": r.trial.params,
                "status": r.status,
                "score": r.score,
                "run_id": r.run.run.run_id if r.run else None,
                **({"error": r.error} if r.error else {}),
            }
            for r in result.results
        ],
    }


def score_table(result: SweepResult, limit: int = 30) -> str:
    """A Markdown table of the trials, best first, with a bar for each score (the UI's plot of score by trial)."""
    ranked = sorted(
        result.results, key=lambda r: (r.score is None, -(r.score or 0.0) if result.higher else (r.score or 0.0))
    )
    scores = [r.score for r in ranked if r.score is not None]
    low, high = (min(scores), max(scores)) if scores else (0.0, 0.0)
    lines = [f"| trial | params | {result.metric} | | status |", "|---|---|---|---|---|"]
    for r in ranked[:limit]:
        if r.score is None:
            bar, score = "", "—"
        else:
            share = 1.0 if high == low else (r.score - low) / (high - low)
            share = share if result.higher else 1.0 - share
            bar, score = "█" * (1 + round(share * 19)), f"{r.score:.4g}"
        mark = " (winner)" if result.winner is r else ""
        label = r.trial.label.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.trial.id}{mark} | {label} | {score} | {bar} | {r.status} |")
    if len(ranked) > limit:
        lines.append(f"| … | {len(ranked) - limit} more in sweep/trials.json | | | |")
    return "\n".join(lines)


def score_plot(result: SweepResult) -> str:
    """An HTML page with an SVG plot of each trial's score in trial order, the winner marked."""
    scored = [(i, r) for i, r in enumerate(result.results) if r.score is not None]
    width, height, pad = 640, 320, 40
    values = [float(r.score or 0.0) for _, r in scored]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or 1.0
    n = max(len(result.results) - 1, 1)

    def point(i: int, score: float) -> tuple[float, float]:
        return pad + i * (width - 2 * pad) / n, height - pad - (score - low) / span * (height - 2 * pad)

    dots = []
    for i, r in scored:
        x, y = point(i, float(r.score or 0.0))
        winner = result.winner is r
        tip = html.escape(f"{r.trial.id} ({r.trial.label}): {r.score:.6g} {r.status}")
        colour = "#d62728" if winner else "#1f77b4"
        dots.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if winner else 4}" fill="{colour}"><title>{tip}</title></circle>'
        )
    axis = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad}" y="{pad - 10}" font-size="12">{html.escape(result.metric)} by trial '
        f"({html.escape('higher' if result.higher else 'lower')} is better; red: the winner)</text>"
        f'<text x="4" y="{pad + 4}" font-size="11">{high:.4g}</text>'
        f'<text x="4" y="{height - pad}" font-size="11">{low:.4g}</text>'
        f'<text x="{width / 2 - 20}" y="{height - 10}" font-size="11">trial</text>'
    )
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{axis}{"".join(dots)}</svg>'
    return f"<!doctype html><meta charset='utf-8'><title>sweep</title><body style='font-family:sans-serif'>{svg}</body>"
