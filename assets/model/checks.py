"""The checks a model asset reports after each training: its aliases follow git, its champion loads."""

from __future__ import annotations

import dagster as dg

from assets.model import champion, pins
from assets.model.pins import ALIAS_CHECK, CHAMPION_CHECK
from assets.spec.model_spec import Model
from resources.alerts import Alerter
from resources.errors import SlipwayError
from resources.registry import ModelRegistry


def alias_check(
    context: dg.AssetExecutionContext, registry: ModelRegistry, key: dg.AssetKey, name: str, spec: Model, version: str
) -> dg.AssetCheckResult:
    """``aliases_follow_git`` after a training: what still does not match git (a hand move it did not undo)."""
    model = pins.Pinned(key.to_user_string(), name, spec.promote)
    try:
        findings = pins.detect(registry, model)
    except SlipwayError as exc:
        findings = [pins.Finding(model.asset, name, "", f"not checked: {exc}", "warning")]
    # Shared with `slipway run` and the sensor, so that they do not report the same finding again.
    pins.evaluations(context.instance, [f for f in findings if f.alias], [model.asset])
    text = (
        "; ".join(f.message for f in findings) or f"the aliases are where git and the training of v{version} put them"
    )
    return dg.AssetCheckResult(
        check_name=ALIAS_CHECK,
        passed=not findings,
        severity=dg.AssetCheckSeverity.WARN,
        description=text,
        metadata={"finding": text},
    )


def champion_check(
    context: dg.AssetExecutionContext,
    registry: ModelRegistry,
    alerter: Alerter,
    model: pins.Pinned,
    promoted: tuple[str, str | None, champion.Comparison | None],
    link: str,
) -> dg.AssetCheckResult:
    """``champion_loadable`` after a training: can the version that holds the promotion alias be loaded?

    ``promoted``: the new version, the version that holds the alias once it was decided and its
    comparison with the champion. A newly failing check alerts (once: the report is shared with
    `slipway run`).
    """
    version, holder, comparison = promoted
    alias = model.promote.alias
    try:
        if holder is None:
            nobody = f"no version holds {alias}"
            finding = pins.Finding(model.asset, model.registered, alias, nobody, "ok", CHAMPION_CHECK)
        elif holder == version or (comparison and comparison.version == holder and not comparison.unloadable):
            finding = pins.champion_finding(registry, model, holder, loaded=True)  # just saved, or just scored
        elif comparison and comparison.version == holder and not comparison.lost:
            finding = pins.champion_finding(registry, model, holder, load_error=comparison.unloadable)
        else:
            finding = pins.champion_finding(registry, model, holder)
    except SlipwayError as exc:
        return dg.AssetCheckResult(
            check_name=CHAMPION_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not checked: {exc}",
        )
    reported = pins.evaluations(context.instance, [finding], [model.asset], checks=[CHAMPION_CHECK])
    if reported and not finding.passed:
        alerter.send(pins.champion_alert(finding, link), context.log)
    return dg.AssetCheckResult(
        check_name=CHAMPION_CHECK,
        passed=finding.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=finding.message,
        metadata={"finding": finding.message},
    )
