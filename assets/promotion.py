"""Promotion: which alias a newly registered version gets.

A version takes the promotion alias (``champion``) only when every gate passes and, if a
champion exists, it beats the champion on the same holdout. A version that passes its gates
but does not beat the champion becomes ``challenger``. A version that fails a gate gets no
alias at all.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from assets.metrics import beats
from assets.schema import Promote, parse_gate

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
        results.append(GateResult(metric, condition, metrics[metric], bool(_OPS[op](metrics[metric], threshold))))
    return results


def primary_metric(promote: Promote, metric_names: list[str]) -> str:
    """The metric a challenger is compared on: the first gate's, else the first metric."""
    return next(iter(promote.gates), metric_names[0])


def decide(
    promote: Promote,
    gates: list[GateResult],
    metric: str,
    challenger_score: float,
    champion_score: float | None,
) -> Decision:
    """Pick the alias for the new version (see the module docstring)."""
    failed = [g for g in gates if not g.passed]
    if failed:
        names = ", ".join(f"{g.metric}={g.value:.4g} (needs {g.condition.strip()})" for g in failed)
        return Decision(None, f"gate failed: {names}")
    if promote.must_beat is None or champion_score is None:
        return Decision(
            promote.alias, "gates passed; no champion to beat" if champion_score is None else "gates passed"
        )
    if beats(metric, challenger_score, champion_score):
        return Decision(
            promote.alias, f"beats {promote.must_beat}: {metric} {challenger_score:.4g} vs {champion_score:.4g}"
        )
    return Decision(
        CHALLENGER, f"does not beat {promote.must_beat}: {metric} {challenger_score:.4g} vs {champion_score:.4g}"
    )
