"""Bad input refused with a message that says what and where (issue 7, part)."""

from __future__ import annotations

import textwrap

import pytest

from assets.spec.loader import parse_file
from resources.errors import DefinitionError

TWICE = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {generator: churn, rows: 50}
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3}
      metrics: [accuracy]
      params: {max_depth: 30}
"""


def test_a_duplicate_key_is_an_error_with_both_lines(tmp_path):
    path = tmp_path / "defs.yaml"
    path.write_text(textwrap.dedent(TWICE).lstrip())
    with pytest.raises(DefinitionError) as caught:
        parse_file(path)
    assert str(caught.value) == f"{path}:14: malformed YAML: duplicate key 'params' (first on line 12)"


def test_an_infinite_metric_fails_its_gate_and_never_promotes():
    from assets.model.promotion import decide, evaluate_gates
    from assets.spec.model_spec import Promote

    promote = Promote(gates={"rmse": ">= 0"})
    (gate,) = evaluate_gates(promote, {"rmse": float("inf")})
    assert not gate.passed
    ungated = Promote(gates={})
    decision = decide(ungated, [], "rmse", float("inf"), None)
    assert decision.alias is None and "rmse is inf on the holdout" in decision.reason
    assert decide(ungated, [], "rmse", float("-inf"), None).alias is None
