"""Promotion: which alias a newly registered version gets.

A version takes the promotion alias (``champion``) only when every gate passes and, if a
champion exists, it beats the champion on rows neither trained on (:mod:`assets.model.champion`).
A version that passes its gates but does not beat the champion, or meets a champion that
cannot be scored, becomes ``challenger`` and the champion keeps its alias; except a champion
whose files are gone (it can never be loaded, so it cannot be served): a version that passes
its gates takes its alias, and says so. A version that fails a gate, or whose metric is NaN,
gets no alias at all.

The order of a promotion (:func:`move_alias`): decide against the champion as read, register
the version with its decision, wait for the earlier versions' promotions to finish (version
numbers order trainings that share a registry no lock reaches), read the aliases again, decide
again if the champion moved meanwhile, then move the alias.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from assets.model.champion import Comparison
from assets.model.pins import pinned_to
from assets.model.recovery import replaces_tag
from assets.spec.metrics import beats
from assets.spec.model_spec import Promote, parse_gate
from resources.registry import TURN_SECONDS, ModelRegistry

CHALLENGER = "challenger"
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


@dataclass(frozen=True)
class GateResult:
    """One gate evaluated."""

    metric: str
    condition: str
    value: float
    passed: bool


@dataclass(frozen=True)
class Decision:
    """The alias a new version gets, and why."""

    alias: str | None
    reason: str


def evaluate_gates(promote: Promote, metrics: dict[str, float]) -> list[GateResult]:
    """Check each gate against the holdout metrics."""
    results = []
    for metric, condition in promote.gates.items():
        op, threshold = parse_gate(condition)
        value = metrics[metric]
        # NaN and ±inf compare as they like (inf >= 0 holds): a non-finite metric never passes.
        passed = math.isfinite(value) and bool(_OPS[op](value, threshold))
        results.append(GateResult(metric, condition, value, passed))
    return results


def primary_metric(promote: Promote, metric_names: list[str]) -> str:
    """The metric a challenger is compared on: the first gate's, else the first metric."""
    return next(iter(promote.gates), metric_names[0])


def decide(
    promote: Promote,
    gates: list[GateResult],
    metric: str,
    challenger_score: float,
    comparison: Comparison | None,
) -> Decision:
    """Pick the alias for the new version (see the module docstring).

    ``challenger_score`` is the new version's ``metric`` on its own holdout; ``comparison`` is
    the champion and the new version scored on rows neither trained on (None: no champion).
    An alias pinned in git (``promote.pin``) is never moved by a promotion: the version that
    would have taken it becomes ``challenger`` (unless that is pinned too).
    """
    decision = _decide(promote, gates, metric, challenger_score, comparison)
    pinned = pinned_to(promote, decision.alias)
    if decision.alias is None or pinned is None:
        return decision
    fallback = CHALLENGER if decision.alias != CHALLENGER and CHALLENGER not in promote.pin else None
    return Decision(fallback, f"{decision.reason}; {decision.alias} is pinned to v{pinned} in git (promote.pin)")


def apart(first: float, second: float) -> tuple[str, str]:
    """Both numbers with 4 significant digits, or as many more as it takes to show they differ."""
    for digits in range(4, 18):
        shown = f"{first:.{digits}g}", f"{second:.{digits}g}"
        if shown[0] != shown[1] or first == second:
            return shown
    return shown


def _decide(
    promote: Promote,
    gates: list[GateResult],
    metric: str,
    challenger_score: float,
    comparison: Comparison | None,
) -> Decision:
    failed = [g for g in gates if not g.passed]
    if failed:
        names = ", ".join(f"{g.metric}={g.value:.4g} (needs {g.condition.strip()})" for g in failed)
        return Decision(None, f"gate failed: {names}")
    if math.isnan(challenger_score):
        return Decision(None, f"{metric} is NaN on the holdout; a NaN never promotes")
    if math.isinf(challenger_score):
        return Decision(None, f"{metric} is {challenger_score} on the holdout; a non-finite metric never promotes")
    if promote.must_beat is None:
        return Decision(promote.alias, "gates passed")
    if comparison is None:
        return Decision(promote.alias, f"gates passed; no {promote.must_beat} to beat")
    if comparison.lost:
        lost = f"{promote.must_beat} v{comparison.version} {comparison.problem}"
        return Decision(promote.alias, f"gates passed; {lost}: it gives up its alias")
    held = f"{promote.must_beat} v{comparison.version} keeps its alias"
    if comparison.problem is not None:
        return Decision(CHALLENGER, f"{held}: {comparison.problem}")
    new, old = comparison.challenger_score, comparison.champion_score
    if new is None or old is None or math.isnan(new) or math.isnan(old):
        return Decision(CHALLENGER, f"{held}: {metric} is NaN on the {comparison.rows} comparison rows")
    shown_new, shown_old = apart(new, old)
    versus = f"{metric} {shown_new} vs {shown_old} on {comparison.rows} {comparison.on}"
    if beats(metric, new, old):
        return Decision(promote.alias, f"beats {promote.must_beat} v{comparison.version}: {versus}")
    return Decision(CHALLENGER, f"does not beat {promote.must_beat} v{comparison.version}: {versus}")


# Decide the promotion of the new version against a holder of ``must_beat`` (None: no holder).
Judge = Callable[[str | None], tuple[Decision, Comparison | None]]


def decision_tags(decision: Decision, comparison: Comparison | None, aliases: Mapping[str, str]) -> dict[str, str]:
    """The version tags that record ``decision``, made when the registry held ``aliases``."""
    tags = {
        "slipway.promotion": decision.reason,
        "slipway.compared_with": comparison.version if comparison else "none",
    }
    if decision.alias:
        # What it replaces, for recovery to give the alias back if this training dies.
        tags[replaces_tag(decision.alias)] = aliases.get(decision.alias, "none")
    return tags


def move_alias(
    registry: ModelRegistry,
    name: str,
    version: str,
    promote: Promote,
    decided: tuple[Decision, Comparison | None],
    aliases: Mapping[str, str],
    judge: Judge,
    warn: Callable[[str], None],
) -> tuple[Decision, Comparison | None, dict[str, str]]:
    """In its turn, move the alias that ``decided`` gives registered ``version``.

    Returns the final decision, its comparison, and the model's aliases once it moved.
    ``aliases`` are what the decision was made against. They are read again just before the
    alias moves, once every earlier version of the model has moved its own
    (:meth:`~resources.registry.ModelRegistry.wait_turn`): when ``must_beat`` moved meanwhile
    (another home sharing the registry promoted a version), the version is decided again
    against its new holder, and its tags are rewritten with that decision.
    """
    decision, comparison = decided
    for stale in registry.wait_turn(name, version):
        warn(f"{name}: v{stale} was still promoting after {TURN_SECONDS:.0f} s; v{version} did not wait longer")
    now = registry.aliases(name)
    held, holder = (aliases.get(promote.must_beat), now.get(promote.must_beat)) if promote.must_beat else (None, None)
    if holder != held:
        decision, comparison = judge(holder)
        registry.tag_version(name, version, decision_tags(decision, comparison, now))
    elif decision.alias and now.get(decision.alias) != aliases.get(decision.alias):
        registry.tag_version(name, version, {replaces_tag(decision.alias): now.get(decision.alias, "none")})
    if decision.alias:
        registry.set_alias(name, decision.alias, version)
        now = {**now, decision.alias: version}
    registry.end_turn(name, version)
    return decision, comparison, now
