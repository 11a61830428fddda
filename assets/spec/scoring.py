"""What a ``predictions:`` entry of a ``defs.yaml`` may say: a table scored by whatever holds a model's alias.

Example::

    predictions:
      scored_customers:
        model: churn_classifier     # a model of this pipeline
        alias: champion             # default: the alias the model promotes to
        dataset: new_customers      # a dataset of this pipeline, or another's as pipeline/dataset

The alias is the contract: the table is rebuilt when its dataset has new data or when the
alias moves (a promotion, a pin, a ``git revert`` of a pin), and records which version scored it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field

from assets.spec.fields import INPUT_PATTERN, NAME_PATTERN, Closed
from assets.spec.metrics import suggest


class Prediction(Closed):
    """A batch-scored table: ``dataset`` scored by the version of ``model`` that holds ``alias``."""

    model: str = Field(pattern=NAME_PATTERN, description="A model of this pipeline.")
    alias: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="The alias whose version scores; the model's promote alias."
    )
    dataset: str = Field(pattern=INPUT_PATTERN, description="The table to score: `name` or `pipeline/name`.")
    column: str = Field(default="prediction", min_length=1, description="The column the predictions go in.")
    chunk_rows: int = Field(default=100_000, gt=0, le=10_000_000, description="Rows scored at a time.")
    description: str | None = None


def alias_of(prediction: Prediction, promote_alias: str) -> str:
    """The alias ``prediction`` scores with: its own, else the one its model promotes to."""
    return prediction.alias or promote_alias


def alias_source_name(model: str, alias: str) -> str:
    """The name of the source asset that observes which version holds ``alias`` (``champion_of_clf``)."""
    return f"{alias}_of_{model}"


class Canary(Closed):
    """A share of requests answered by another alias."""

    alias: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(gt=0, lt=100, description="Percent of requests it answers.")


class Shadow(Closed):
    """An alias that scores every request beside the one that answers; its answers are logged, not returned."""

    alias: str = Field(pattern=NAME_PATTERN)


class Serve(Closed):
    """How ``slipway serve`` serves a model: the alias that answers, and a canary or a shadow beside it.

    Example::

        serve: {alias: champion, canary: {alias: challenger, weight: 10}}
    """

    alias: str | None = Field(default=None, pattern=NAME_PATTERN, description="Default: the promote alias.")
    canary: Canary | None = None
    shadow: Shadow | None = None


Problem = tuple[tuple[str | int, ...], str]


def prediction_problems(
    predictions: Mapping[str, Prediction],
    datasets: Mapping[str, Any],
    models: Mapping[str, Any],
    unknown: Callable[[str, tuple[str | int, ...], str], list[Problem]],
) -> list[Problem]:
    """A pipeline's ``predictions:`` rules across fields: names that clash, models and datasets that do not exist."""
    found: list[Problem] = []
    for key in set(predictions) & (set(datasets) | set(models)):
        found.append((("predictions", key), f"{key!r} names both a prediction table and a dataset or model"))
    for name, scored in predictions.items():
        if scored.model not in models:
            found.append(
                (("predictions", name, "model"), f"unknown model {scored.model!r}{suggest(scored.model, models)}")
            )
        found += unknown(scored.dataset, ("predictions", name, "dataset"), "dataset")
    return found
