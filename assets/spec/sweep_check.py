"""``slipway validate`` on a model's ``sweep:``: each swept param is one its estimator takes, with values it accepts.

Names are checked against the estimator's signature like ``params`` (did-you-mean). Values are
checked by the estimator itself where it declares what it accepts (scikit-learn's
``_validate_params``, without fitting): each value of each swept param, with the model's other
params, so ``criterion: [gini, bogus]`` is refused at ``file:line`` instead of failing half the
trials at run time. An estimator that declares nothing has its values checked by its trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assets.spec.imports import ESTIMATOR, resolve
from assets.spec.loader import LoadedPipeline
from assets.spec.metrics import suggest
from assets.spec.model_spec import Model
from assets.spec.sweep_spec import Span, expand, grid_size
from resources.errors import DefinitionError


def sweep_problems(
    pipeline: LoadedPipeline,
    name: str,
    model: Model,
    signature: tuple[list[str] | None, str],
    allowed: Sequence[str],
    prefix: str,
) -> list[str]:
    """Swept params the estimator does not take, and values it refuses, one ``path:line`` line each."""
    assert model.sweep is not None and model.estimator is not None
    accepted, owner = signature
    problems = []
    for key, values in model.sweep.params.items():
        at = pipeline.where("models", name, "sweep", "params", key)
        if accepted is not None and key not in accepted:
            problems.append(f"{at}: {prefix}: sweep.params: {owner} has no parameter {key!r}{suggest(key, accepted)}")
            continue
        for value in _values(values):
            refused = _refused(model, key, value, allowed, pipeline.where("models", name, "estimator"))
            if refused:
                problems.append(f"{at}: {prefix}: sweep.params.{key}: {owner} refuses {value!r}: {refused}")
                break  # one value each: the message says what it accepts
    return problems


def _values(values: list[Any] | Span) -> list[Any]:
    if isinstance(values, Span):
        if values.range is not None:
            return values.values()
        bounds = values.uniform or values.log_uniform
        return list(bounds or ())
    return list(values)


def _refused(model: Model, key: str, value: Any, allowed: Sequence[str], where: str) -> str | None:
    """Why the estimator refuses ``key: value`` (with the model's params), None when it accepts or cannot say."""
    try:
        cls = resolve(model.estimator or "", allowed, where, ESTIMATOR)
        estimator = cls(**{**model.params, key: value})
    except DefinitionError:
        return None  # reported with the estimator's own field
    except Exception as exc:  # the constructor refuses it
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    check = getattr(estimator, "_validate_params", None)
    if not callable(check):
        return None
    try:
        check()
    except Exception as exc:  # scikit-learn's InvalidParameterError is a ValueError
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def sweep_notes(pipeline: LoadedPipeline) -> list[str]:
    """``path: pipeline P: model M: sweep of 24 trials (…)`` for each model with a sweep."""
    lines = []
    for name, model in pipeline.spec.models.items():
        if model.sweep is None:
            continue
        expansion = expand(model.sweep)
        metric, higher = model.winner_metric
        said = f"{len(expansion.trials)} trials" + (f" ({expansion.note})" if expansion.note else "")
        if model.sweep.strategy == "grid" and expansion.note is None and grid_size(model.sweep) > 1:
            said += " (the full grid)"
        lines.append(
            f"{pipeline.path}: pipeline {pipeline.spec.name}: model {name}: sweep of {said}, "
            f"the winner by {'highest' if higher else 'lowest'} {metric}"
        )
    return lines
