"""What a model's training tells people elsewhere: MLflow's descriptions and the alerts.

MLflow's UI renders a run's description (the ``mlflow.note.content`` tag) and a registered
version's description as markdown: both link back to the Dagster run that trained the model
and to its asset. Alerts link to the MLflow run and to the Dagster run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resources.alerts import Alert, Alerter
from resources.links import dagster_asset, dagster_run, markdown_link

if TYPE_CHECKING:
    from assets.model.promotion import Decision, GateResult
    from resources.artifacts import ModelRef
    from resources.tracker import ExperimentTracker

# The tag MLflow's UI shows (and edits) as a run's description.
NOTE_TAG = "mlflow.note.content"


def notes(run_id: str, asset: str, trigger: str | None = None, reason: str = "") -> str:
    """The markdown description of a training's MLflow run and registered version."""
    text = (
        f"Trained by Dagster run {markdown_link(run_id[:8], dagster_run(run_id))} "
        f"for asset {markdown_link(asset, dagster_asset(asset))}."
    )
    if trigger:
        text += f"\n\nRetrained by the `slipway_retrain` sensor ({trigger}): {reason}"
    return text


def champion_metadata(name: str, version: str | None, tracker: ExperimentTracker) -> dict[str, Any]:
    """The materialization's ``champion`` (a markdown link to its version's page) and ``champion_version``.

    ``version`` holds the model's promotion alias (None: no version does).
    """
    import dagster as dg

    if version is None:
        return {"champion": "none"}
    page = tracker.version_url(name, version)
    shown = f"{name} v{version}"
    return {
        "champion": dg.MetadataValue.md(markdown_link(shown, page) if page else shown),
        "champion_version": dg.MetadataValue.int(int(version)),
    }


def alert(
    alerter: Alerter,
    log: Any,
    run_id: str,
    asset: str,
    name: str,
    ref: ModelRef,
    decided: tuple[Decision, str | None],
    gates: list[GateResult],
    link: str,
    alias: str,
) -> None:
    """Alert on a failed gate, on a promotion (the promotion alias moved) and on a new challenger.

    ``decided``: the version's decision and the version that holds ``alias`` (the model's
    promotion alias, ``champion``) once it was made; ``link`` is the MLflow run. A version that
    only became challenger moved no champion: it is said as such, never as a promotion. An alert
    never fails the training.
    """
    decision, serving = decided
    metrics = {k: f"{v:.4g}" for k, v in ref.metrics.items()}
    failed = [g for g in gates if not g.passed]
    if failed:
        text = "; ".join(f"{g.metric} {g.value:.4g} fails {g.condition}" for g in failed)
        title = f"{asset}: v{ref.version} failed its gates"
        alerter.send(Alert("check_failed", title, text, asset, link, metrics, run_id=run_id), log)
    if decision.alias == alias:
        title = f"{name}: v{ref.version} promoted to {alias}"
        alerter.send(Alert("promotion", title, decision.reason, asset, link, metrics, run_id=run_id), log)
    elif decision.alias:
        kept = f"; {alias} v{serving} keeps serving" if serving else ""
        title = f"{name}: v{ref.version} is {decision.alias}{kept}"
        alerter.send(Alert("challenger", title, decision.reason, asset, link, metrics, run_id=run_id), log)
