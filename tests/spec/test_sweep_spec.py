"""A model's ``sweep:`` block: its trials, expanded deterministically, and what validate refuses with file:line."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from assets.spec.model_spec import Model
from assets.spec.sweep_spec import Sweep, expand, grid_size, trial_id
from assets.spec.versions import code_version
from definitions.cli.validate import validate
from resources.errors import DefinitionError

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {random_state: 0}
      metrics: [accuracy, roc_auc]
      sweep:
        SWEEP
"""

ORDERS = pd.DataFrame({"customer_id": [1, 2, 3, 4], "tenure": [1, 5, 9, 2], "churned": [0, 1, 0, 1]})


def _sweep(**block) -> Sweep:
    return Sweep.model_validate(block)


def test_a_grid_is_every_combination_in_declared_order_and_a_range_includes_its_stop():
    sweep = _sweep(params={"max_depth": [4, 8], "n_estimators": {"range": [100, 300, 100]}})
    trials = expand(sweep).trials
    assert [t.params for t in trials] == [{"max_depth": d, "n_estimators": n} for d in (4, 8) for n in (100, 200, 300)]
    assert grid_size(sweep) == 6 and expand(sweep).note is None
    assert trials[0].label == "max_depth=4, n_estimators=100"
    # A trial's id is its params', whatever their order.
    assert trials[0].id == trial_id({"n_estimators": 100, "max_depth": 4})
    assert _sweep(params={"alpha": {"range": [0.1, 0.3, 0.1]}}).params["alpha"].values() == [0.1, 0.2, 0.3]


def test_a_grid_larger_than_max_trials_is_sampled_the_same_way_each_time_and_says_so():
    block = {"params": {"a": list(range(6)), "b": list(range(6))}, "max_trials": 10, "seed": 3}
    first, again = expand(_sweep(**block)), expand(_sweep(**block))
    assert [t.params for t in first.trials] == [t.params for t in again.trials] and len(first.trials) == 10
    assert first.note == "a grid of 36 trials, max_trials 10: 10 sampled with seed 3"
    other = expand(_sweep(**{**block, "seed": 4}))
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


def test_a_random_sweep_draws_the_same_trials_for_a_seed_and_keeps_repeats_once():
    block = {
        "strategy": "random",
        "seed": 7,
        "max_trials": 8,
        "params": {"lr": {"log_uniform": [1e-4, 1e-1]}, "depth": [3, 5], "leaf": {"uniform": [0.0, 1.0]}},
    }
    trials = expand(_sweep(**block)).trials
    assert [t.params for t in trials] == [t.params for t in expand(_sweep(**block)).trials]
    assert all(1e-4 <= t.params["lr"] <= 1e-1 and t.params["depth"] in (3, 5) for t in trials)
    few = expand(_sweep(strategy="random", seed=0, max_trials=20, params={"depth": [3, 5]}))
    assert len(few.trials) == 2 and few.note == "20 draws gave 2 distinct trials (18 repeated trials are trained once)"


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"params": {}}, "Dictionary should have at least 1 item"),
        ({"params": {"a": []}}, "a: an empty list gives no trial"),
        ({"params": {"a": [1]}, "max_trials": 0}, "max_trials\n  Input should be greater than or equal to 1"),
        ({"strategy": "random", "max_trials": 3, "params": {"a": [1]}}, "a random sweep needs a `seed`"),
        ({"strategy": "random", "seed": 1, "params": {"a": [1]}}, "a random sweep needs `max_trials`"),
        ({"params": {"a": {"uniform": [0, 1]}}}, "a grid cannot list a continuous interval"),
        ({"params": {"a": {"range": [5, 1, 1]}}}, "needs start <= stop and a step above 0"),
        ({"params": {"a": {"log_uniform": [0, 1]}}, "strategy": "random", "seed": 0, "max_trials": 2}, "above 0"),
        ({"params": {"a": [1]}, "min_success_ratio": 0}, "min_success_ratio\n  Input should be greater than 0"),
        ({"params": {"day": [__import__("datetime").date(2024, 1, 1)]}}, "is not a number, text, true/false or null"),
        (
            {"params": {"a": list(range(50)), "b": list(range(50))}},
            "the grid has 2500 trials (a step each): set max_trials",
        ),
    ],
)
def test_bad_sweeps_are_refused_saying_why(block, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _sweep(**block)


def test_the_model_refuses_a_param_in_both_blocks_and_a_select_metric_it_does_not_compute():
    base = {"dataset": "d", "target": "y", "estimator": "sklearn.tree.DecisionTreeClassifier", "metrics": ["f1"]}
    with pytest.raises(ValueError, match=re.escape("sweep.params ['max_depth'] are also in params")):
        Model.model_validate({**base, "params": {"max_depth": 3}, "sweep": {"params": {"max_depth": [2]}}})
    with pytest.raises(ValueError, match=re.escape("sweep.select.metric 'f2' is not in metrics ['f1']; valid: f1")):
        Model.model_validate({**base, "sweep": {"params": {"max_depth": [2]}, "select": {"metric": "f2"}}})
    model = Model.model_validate({**base, "sweep": {"params": {"max_depth": [2]}}})
    assert model.winner_metric == ("f1", True)


def test_parallelism_is_not_part_of_the_code_version_and_a_model_without_a_sweep_keeps_its_own():
    base = {"dataset": "d", "target": "y", "estimator": "sklearn.tree.DecisionTreeClassifier", "metrics": ["f1"]}
    plain = Model.model_validate(base)
    swept = Model.model_validate({**base, "sweep": {"params": {"max_depth": [2, 3]}}})
    wider = Model.model_validate({**base, "sweep": {"params": {"max_depth": [2, 3]}, "parallelism": 4}})
    assert code_version("model", swept) == code_version("model", wider) != code_version("model", plain)
    # A trial trains what the model would with its params and no sweep.
    assert swept.trial({"max_depth": 2}) == Model.model_validate({**base, "params": {"max_depth": 2}})


def test_validate_names_a_swept_param_the_estimator_lacks_or_a_value_it_refuses(home, write_pipeline, defs_dir):
    path = write_pipeline("shop", SHOP.replace("SWEEP", "params: {max_dept: [2, 3]}"), {"data/orders.csv": ORDERS})
    with pytest.raises(DefinitionError) as info:
        validate(defs_dir=defs_dir)
    assert str(info.value) == (
        f"{path}:15: pipeline shop: model clf: sweep.params: DecisionTreeClassifier has no parameter 'max_dept'; "
        "did you mean 'max_depth'?"
    )
    write_pipeline("shop", SHOP.replace("SWEEP", "params: {criterion: [gini, bogus]}"))
    with pytest.raises(DefinitionError) as info:
        validate(defs_dir=defs_dir)
    assert str(info.value).startswith(
        f"{path}:15: pipeline shop: model clf: sweep.params.criterion: DecisionTreeClassifier refuses 'bogus': "
        "The 'criterion' parameter of DecisionTreeClassifier must be a str among"
    )


def test_validate_says_how_many_trials_and_how_they_were_chosen(home, write_pipeline, defs_dir):
    block = "params: {max_depth: [1, 2, 3, 4, 5, 6]}\n        max_trials: 4\n        seed: 3"
    path = write_pipeline("shop", SHOP.replace("SWEEP", block), {"data/orders.csv": ORDERS})
    assert validate(defs_dir=defs_dir)[-1] == (
        f"{path}: pipeline shop: model clf: sweep of 4 trials (a grid of 6 trials, max_trials 4: 4 sampled with "
        "seed 3), the winner by highest accuracy"
    )


def test_an_interval_written_the_way_yaml_reads_1e_4_is_the_number_it_spells():
    sweep = _sweep(strategy="random", seed=0, max_trials=3, params={"lr": {"log_uniform": ["1e-4", "1e-1"]}})
    assert sweep.params["lr"].log_uniform == (0.0001, 0.1)
