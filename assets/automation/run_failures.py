"""What a failed run is alerted as: the step's own error, and whether the data was only refused.

Read from Dagster's serialized step errors (their class names and messages): the run-failure
sensor (:mod:`assets.automation.sensors`) and `slipway run` alert with the same words.
"""

from __future__ import annotations

from typing import Any


def step_error(error: Any) -> Any:
    """What a step itself raised, from Dagster's wrapped error: the first Slipway error in the chain, or the last."""
    from resources import errors

    ours = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    innermost = error
    while error is not None:
        if getattr(error, "cls_name", None) in ours:
            return error
        innermost = error
        error = getattr(error, "cause", None)
    return innermost


def root_message(error: Any) -> str:
    """The first line of what a step raised (:func:`step_error`)."""
    text = str(getattr(step_error(error), "message", "") or "").strip()
    return text.splitlines()[0] if text else ""


def refused_only(errors: list[Any]) -> bool:
    """True when every failed step refused its data: the dataset alerted each already."""
    return bool(errors) and all(getattr(step_error(e), "cls_name", None) == "RefusedData" for e in errors)


def run_failure_alert(run: Any, message: str) -> Any:
    """The alert for a failed run: which run, which assets, the first line of why."""
    from resources.alerts import Alert

    assets = ", ".join(sorted(k.to_user_string() for k in run.asset_selection or ())) or run.job_name
    first = (message or "failed").strip().splitlines()[0][:300]
    trigger = run.tags.get("slipway/retrain_trigger")
    fields = {"run": run.run_id[:8], **({"retrain trigger": trigger} if trigger else {})}
    return Alert("run_failed", f"run {run.run_id[:8]} failed ({assets})", first, fields=fields, run_id=run.run_id)


def run_interrupted_alert(run: Any) -> Any:
    """The alert for a run stopped by an interrupt: which run, which assets, what stays in use."""
    from resources.alerts import Alert

    assets = ", ".join(sorted(k.to_user_string() for k in run.asset_selection or ())) or run.job_name
    text = (
        "stopped by an interrupt (Ctrl-C) before it finished; the last versions built stay in use, "
        "and the next run builds what is out of date"
    )
    return Alert(
        "run_interrupted",
        f"run {run.run_id[:8]} interrupted ({assets})",
        text,
        fields={"run": run.run_id[:8]},
        run_id=run.run_id,
    )
