"""Alias pins: the registry follows git, and an alias moved by hand is seen.

A model's ``promote.pin`` (``{champion: 3}``) says which version an alias must point at. The
reconcile step (on every `slipway run` that is not a cached no-op, and the ``slipway_alias_pins``
sensor when deployed) makes the registry match: a pinned alias that points elsewhere is set back,
and automatic promotion never moves a pinned alias (:func:`assets.model.promotion.decide`). So a
rollback is ``git revert`` of the commit that moved the pin.

Every alias Slipway sets is recorded on the registered model
(:data:`resources.registry.ALIAS_RECORD_PREFIX`); an unpinned alias that points elsewhere was
moved outside Slipway. That is reported (a warning line and a failed ``aliases_follow_git``
check on the model asset) and left alone: the next promotion decides from where it is.

The version that holds the promotion alias is the one served: when its model files are gone,
``champion_loadable`` fails on the model asset (:func:`champion_finding`), until a new version
that passes its gates takes the alias from it (:func:`assets.model.promotion.decide`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from assets.spec.model_spec import Promote
from resources.alerts import Alert
from resources.dagster_private import cursor_values, set_cursor_values
from resources.registry import ABANDONED_TAG, NO_ALIASES, AliasState, ModelRegistry

ALIAS_CHECK = "aliases_follow_git"
CHAMPION_CHECK = "champion_loadable"
# The model asset's metadata that holds its promote block (pins included), for the sensor.
PROMOTE_METADATA = "slipway/promote"


@dataclass(frozen=True)
class Finding:
    """What the reconcile step found (and did) for one alias of one model."""

    asset: str
    registered: str
    alias: str
    message: str
    # set: made to match git; warning: moved outside git and left alone (or not checked);
    # error: a pin that cannot be met, or a served version that cannot be loaded; ok: as it should be.
    level: str
    check: str = ALIAS_CHECK
    version: str | None = None  # of a CHAMPION_CHECK finding: the version that holds the alias

    @property
    def passed(self) -> bool:
        """True when the registry now matches git (and the served version can be loaded)."""
        return self.level in ("set", "ok")

    @property
    def key(self) -> str:
        """What the finding is about, as the instance keeps the last report (:func:`evaluations`)."""
        return f"{self.asset}|{self.alias}" + ("" if self.check == ALIAS_CHECK else f"|{self.check}")


@dataclass(frozen=True)
class Pinned:
    """A model as reconcile needs it: its asset key, registered name and promotion block."""

    asset: str
    registered: str
    promote: Promote


def reconcile(registry: ModelRegistry, models: list[Pinned], champions: bool = False) -> list[Finding]:
    """Set pinned aliases back to their pins; report aliases moved outside Slipway.

    ``champions``: also whether each model's served version (its promotion alias) can still be
    loaded, one :data:`CHAMPION_CHECK` finding per model whose alias is held.
    """
    if not models:
        return []
    states = registry.alias_states([m.registered for m in models])
    findings: list[Finding] = []
    for model in models:
        state = states.get(model.registered, NO_ALIASES)
        aliases = state.aliases
        found = _findings(registry, model, state)
        if found:
            # Read again under the model's promotion lock: a promotion that was between
            # recording an alias and moving it has finished by then (it holds the lock).
            with registry.promotion_lock(model.registered):
                state = registry.alias_states([model.registered]).get(model.registered, NO_ALIASES)
                found = _findings(registry, model, state, fix=True)
                aliases = registry.aliases(model.registered) if champions else state.aliases  # where the pins left it
        _record_pins(registry, model, state, found)
        findings += found
        holder = aliases.get(model.promote.alias)
        if champions and holder is not None:
            findings.append(champion_finding(registry, model, holder))
    return findings


def champion_finding(
    registry: ModelRegistry, model: Pinned, holder: str, loaded: bool = False, load_error: str | None = None
) -> Finding:
    """Whether ``holder``, the version of ``model`` that holds its promotion alias, can be loaded.

    ``loaded``: it was just loaded (or saved); ``load_error``: loading it just failed with that.
    Otherwise its files are looked for (:meth:`~resources.registry.ModelRegistry.unloadable`).
    """
    alias = model.promote.alias
    problem = None if loaded else load_error or registry.unloadable(model.registered, holder)
    if problem is None:
        message = f"{alias} v{holder} can be loaded"
        return Finding(model.asset, model.registered, alias, message, "ok", CHAMPION_CHECK, holder)
    message = f"{model.registered}: {alias} v{holder} cannot be loaded: {problem}"
    return Finding(model.asset, model.registered, alias, message, "error", CHAMPION_CHECK, holder)


def champion_alert(finding: Finding, link: str | None = None) -> Alert:
    """The alert for a failed :data:`CHAMPION_CHECK` finding."""
    title = f"{finding.asset}: {finding.alias} v{finding.version} cannot be loaded"
    return Alert("check_failed", title, finding.message, finding.asset, link)


def detect(registry: ModelRegistry, model: Pinned) -> list[Finding]:
    """What does not match git for one model, moving nothing (a training's own check)."""
    return _findings(registry, model, registry.alias_states([model.registered]).get(model.registered, NO_ALIASES))


def _findings(registry: ModelRegistry, model: Pinned, state: AliasState, fix: bool = False) -> list[Finding]:
    aliases, recorded = state.aliases, state.recorded
    found = []
    for alias, version in sorted(model.promote.pin.items()):
        if aliases.get(alias) != str(version):
            found.append(_pin(registry, model, alias, str(version), aliases, recorded, fix))
    for alias in sorted(set(state.pinned) - set(model.promote.pin)):
        # Git pinned it and no longer does: nothing moves it now, which is worth saying once.
        where = f"v{aliases[alias]}" if alias in aliases else "no version"
        message = f"{model.registered}: {alias} no longer pinned: stays on {where}; promotions move it from now on"
        found.append(Finding(model.asset, model.registered, alias, message, "set"))
    for alias in sorted({model.promote.alias, "challenger"} - set(model.promote.pin)):
        actual, meant = aliases.get(alias), recorded.get(alias)
        if meant is not None and actual != meant:
            where = f"v{actual}" if actual else "nowhere (removed)"
            found.append(
                Finding(
                    model.asset,
                    model.registered,
                    alias,
                    f"{model.registered}: {alias} points at {where}, but Slipway last set it to v{meant}: "
                    "it was moved outside git; pin it in promote.pin to make git decide",
                    "warning",
                )
            )
    return found


def _record_pins(registry: ModelRegistry, model: Pinned, state: AliasState, found: list[Finding]) -> None:
    """Keep the registry's record of the pins git holds (a pin met or just set), and forget removed ones."""
    met = {f.alias for f in found if f.level == "set"} | {
        alias for alias, version in model.promote.pin.items() if state.aliases.get(alias) == str(version)
    }
    for alias, version in model.promote.pin.items():
        if alias in met and state.pinned.get(alias) != str(version):
            registry.record_pin(model.registered, alias, str(version))
    for alias in set(state.pinned) - set(model.promote.pin):
        registry.record_pin(model.registered, alias, None)


def _pin(
    registry: ModelRegistry,
    model: Pinned,
    alias: str,
    version: str,
    aliases: Mapping[str, str],
    recorded: Mapping[str, str],
    fix: bool,
) -> Finding:
    actual = aliases.get(alias)
    stays = f"{alias} stays on {f'v{actual}' if actual else 'no version'}"
    tags = registry.version_tags(model.registered, version)
    if tags is None:
        return Finding(
            model.asset,
            model.registered,
            alias,
            f"{model.registered}: promote.pin sets {alias} to v{version}, which is not registered; {stays}",
            "error",
        )
    if ABANDONED_TAG in tags:
        return Finding(
            model.asset,
            model.registered,
            alias,
            f"{model.registered}: promote.pin sets {alias} to v{version}, which was abandoned "
            f"({tags[ABANDONED_TAG]}); {stays}",
            "error",
        )
    if not fix:
        return Finding(
            model.asset, model.registered, alias, f"{model.registered}: {alias} is not on v{version} as pinned", "error"
        )
    registry.set_alias(model.registered, alias, version)
    by_hand = actual is not None and recorded.get(alias) not in (None, actual)
    was = f"v{actual}" if actual else "no version"
    how = f"it had been moved outside git to {was}" if by_hand else f"it was on {was}"
    return Finding(
        model.asset,
        model.registered,
        alias,
        f"{model.registered}: {alias} set to v{version} as pinned in git ({how})",
        "set",
    )


def pinned_to(promote: Promote, alias: str | None) -> int | None:
    """The version ``alias`` is pinned to, or None when git does not pin it."""
    return None if alias is None else promote.pin.get(alias)


REPORTED_KEY = "slipway/alias-findings"


def models_of(graph: Any, keys: Iterable[Any]) -> list[Pinned]:
    """The models among ``keys`` of an asset graph, with their promote blocks (from the asset metadata)."""
    found = []
    for key in keys:
        metadata = graph.get(key).metadata
        promote, registered = metadata.get(PROMOTE_METADATA), metadata.get("slipway/registered_model")
        if promote is not None and registered is not None:
            text = getattr(promote, "value", promote)
            found.append(Pinned(key.to_user_string(), str(getattr(registered, "value", registered)), _promote(text)))
    return found


def _promote(text: str) -> Promote:
    return Promote.model_validate_json(text)


def evaluations(
    instance: Any, findings: list[Finding], checked: Iterable[str], checks: Collection[str] = (ALIAS_CHECK,)
) -> list[Any]:
    """The check evaluations to record: what changed since the last report.

    ``findings`` are every finding of the checks ``checks`` on the assets ``checked``. A failure
    already reported with the same message is not reported again (a sensor ticks every minute);
    one that was reported and is now gone gets a passing evaluation. The last report is kept in
    the instance, shared by `slipway run`, the trainings and the sensor.
    """
    import dagster as dg

    stored = cursor_values(instance, {REPORTED_KEY}).get(REPORTED_KEY)
    try:
        previous: dict[str, str] = json.loads(stored) if stored else {}
    except ValueError:
        previous = {}
    checked = set(checked)

    def covered(key: str) -> bool:
        asset, _, rest = key.partition("|")
        return asset in checked and (rest.partition("|")[2] or ALIAS_CHECK) in checks

    current = {k: v for k, v in previous.items() if not covered(k)}
    events = []

    def evaluation(asset: str, check: str, passed: bool, message: str) -> Any:
        return dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey.from_user_string(asset),
            check_name=check,
            passed=passed,
            # A served version that cannot be loaded is an error; an alias off git a warning.
            severity=dg.AssetCheckSeverity.ERROR if check == CHAMPION_CHECK else dg.AssetCheckSeverity.WARN,
            description=message,
            metadata={"finding": message},
        )

    answered = set()
    for f in findings:
        if not f.passed:
            current[f.key] = f.message
        if _news(f, previous):
            events.append(evaluation(f.asset, f.check, f.passed, f.message))
            answered.add(f.key)
    for key in previous:
        if covered(key) and key not in current and key not in answered:
            asset, _, rest = key.partition("|")
            alias, _, check = rest.partition("|")
            again = {CHAMPION_CHECK: f"{alias} is no longer on a version that cannot be loaded"}
            message = again.get(check, f"{alias} is where git and Slipway put it again")
            events.append(evaluation(asset, check or ALIAS_CHECK, True, message))
    if current != previous:
        set_cursor_values(instance, {REPORTED_KEY: json.dumps(current, sort_keys=True)})
    return events


def _news(finding: Finding, previous: Mapping[str, str]) -> bool:
    """Whether ``finding`` is worth an evaluation, given what was reported last."""
    if finding.level == "set":  # an alias moved to its pin: always said
        return True
    if finding.passed:  # as it should be: said only when a failure was reported before
        return finding.key in previous
    return previous.get(finding.key) != finding.message
