"""A ``models:`` entry of a ``defs.yaml``: what a model trains on, how it is split and scored, when it is promoted.

Part of the pipeline schema (:mod:`assets.spec.schema`: ``PipelineSpec.models``); like it, it
imports neither Dagster nor any ML library.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from assets.spec.compute import ComputeResources
from assets.spec.fields import IMPORT_PATH_PATTERN, INPUT_PATTERN, NAME_PATTERN, Closed
from assets.spec.metrics import METRICS, suggest
from assets.spec.schedules import Retrain
from assets.spec.scoring import Serve
from assets.spec.sweep_spec import Sweep

_GATE = re.compile(r"^\s*(>=|<=|>|<|==)\s*(-?[0-9.]+(?:[eE]-?[0-9]+)?)\s*$")


class Split(Closed):
    """A deterministic train/test split: each row's side is decided by a seeded hash.

    The hash is of the ``by`` column when given (an id: every row of one customer stays on
    one side), else of the row's feature and target values. A row therefore keeps its side
    when rows are appended, so a champion and a challenger are compared only on rows neither
    trained on. The test share is ``test_size`` on average, not exactly.
    """

    test_size: float = Field(default=0.2, gt=0, lt=1, description="Share of rows (by hash) held out for testing.")
    seed: int = Field(default=0, description="Salt of the hash: another seed gives another split.")
    by: str | None = Field(default=None, description="Id column to split by; the whole row when omitted.")

    @model_validator(mode="before")
    @classmethod
    def _no_stratify(cls, data: Any) -> Any:
        if isinstance(data, dict) and "stratify" in data:
            raise ValueError(
                "`stratify` is gone: rows are split by a hash of `by` (or of the row) so that appended rows "
                "never move between train and test; class shares stay close to the data's. Remove the key"
            )
        return data


def _not_reserved(alias: str, what: str) -> str:
    """MLflow reserves ``latest`` and ``v<digits>`` (they name versions); an alias cannot be one."""
    if alias == "latest" or re.fullmatch(r"v\d+", alias):
        raise ValueError(f"{what} {alias!r}: `latest` and `v<number>` are reserved by MLflow for versions")
    return alias


class Promote(Closed):
    """When a newly trained version may take the alias."""

    alias: str = Field(default="champion", pattern=NAME_PATTERN)
    gates: dict[str, str] = Field(default_factory=dict, description='metric -> condition, e.g. roc_auc: ">= 0.75"')
    must_beat: str | None = Field(
        default="champion", description="Alias the new version must beat on rows neither trained on; null to skip."
    )

    pin: dict[str, StrictInt] = Field(
        default_factory=dict,
        description=(
            "alias -> version the registry must hold, e.g. {champion: 3}: git decides that alias, "
            "and automatic promotion leaves it alone. Moving a pin retrains nothing."
        ),
    )

    @field_validator("alias")
    @classmethod
    def _alias_not_reserved(cls, alias: str) -> str:
        return _not_reserved(alias, "alias")

    @field_validator("pin")
    @classmethod
    def _pins_valid(cls, pin: dict[str, int]) -> dict[str, int]:
        for alias, version in pin.items():
            if not re.match(NAME_PATTERN, alias):
                raise ValueError(f"pin {alias!r}: an alias is lowercase letters, digits and _")
            _not_reserved(alias, "pin")
            if isinstance(version, bool) or version < 1:
                raise ValueError(f"pin {alias}: {version!r} is not a registered version number (1, 2, ...)")
        return pin

    @field_validator("gates")
    @classmethod
    def _gates_parse(cls, gates: dict[str, str]) -> dict[str, str]:
        for metric, condition in gates.items():
            if not _GATE.match(str(condition)):
                raise ValueError(f'gate {metric}: "{condition}" is not a condition like ">= 0.75"')
        return gates


class Model(Closed):
    """A model asset: trained on a dataset, tracked and registered in the experiment tracker."""

    dataset: str = Field(
        pattern=INPUT_PATTERN,
        description="A dataset of this pipeline, or any asset of the code location by key (`team/table`).",
    )
    window: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Train on the last N partitions of a partitioned dataset (every partition when unset).",
    )
    target: str
    features: list[str] | None = Field(default=None, description="Feature columns; all but the target when omitted.")
    estimator: str | None = Field(default=None, pattern=IMPORT_PATH_PATTERN, description="sklearn-API class")
    train: str | None = Field(default=None, pattern=IMPORT_PATH_PATTERN, description="module:function(X, y, params)")
    params: dict[str, Any] = Field(default_factory=dict)
    task: Literal["classification", "regression"] | None = Field(
        default=None, description="Inferred from the first metric when omitted."
    )
    split: Split = Field(default_factory=Split)
    evaluate_on: str | None = Field(
        default=None,
        pattern=INPUT_PATTERN,
        description="A held-out evaluation dataset (name or `pipeline/name`): train on every row, "
        "score and compare with the champion on this one instead of a split.",
    )
    metrics: list[str] = Field(min_length=1)
    promote: Promote = Field(default_factory=Promote)
    retrain: Retrain | None = Field(default=None, description="When it retrains by itself; never without one.")
    serve: Serve | None = Field(default=None, description="How `slipway serve` serves it (canary, shadow).")
    resources: ComputeResources | None = Field(default=None, description="Its pod's size on the k8s stack.")
    sweep: Sweep | None = Field(
        default=None, description="Train once per trial of these params; the best trial's params are registered."
    )
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Model:
        if (self.estimator is None) == (self.train is None):
            raise ValueError("a model needs exactly one of `estimator` or `train`")
        for name in self.metrics:
            if name not in METRICS:
                raise ValueError(f"unknown metric {name!r}{suggest(name, METRICS)}")
        tasks = {METRICS[m].task for m in self.metrics}
        if len(tasks) > 1:
            raise ValueError(f"metrics mix classification and regression: {self.metrics}")
        if self.task is not None and tasks != {self.task}:
            raise ValueError(f"metrics {self.metrics} do not fit task {self.task!r}")
        for gate in self.promote.gates:
            if gate not in self.metrics:
                raise ValueError(f"gate on {gate!r}, which is not in metrics {self.metrics}")
        if self.sweep is not None:
            self._check_sweep(self.sweep)
        if self.evaluate_on is not None and "split" in self.model_fields_set:
            raise ValueError("`split` and `evaluate_on` exclude each other: a model is scored on one or the other")
        return self

    def _check_sweep(self, sweep: Sweep) -> None:
        both = sorted(set(sweep.params) & set(self.params))
        if both:
            raise ValueError(f"sweep.params {both} are also in params: give each param in one of them")
        if sweep.select is not None and sweep.select.metric not in self.metrics:
            metric = sweep.select.metric
            raise ValueError(
                f"sweep.select.metric {metric!r} is not in metrics {self.metrics}{suggest(metric, self.metrics)}"
            )

    def trial(self, params: dict[str, Any]) -> Model:
        """The model as one trial of its sweep trains it: its params with ``params``, and no sweep."""
        return self.model_copy(update={"params": {**self.params, **params}, "sweep": None})

    def trained_as(self, params: dict[str, Any]) -> Model:
        """What a trial with ``params`` computes, for its cache key: no sweep, promotion or description."""
        return self.trial(params).model_copy(update={"promote": Promote(), "description": None})

    @property
    def winner_metric(self) -> tuple[str, bool]:
        """The metric a sweep's winner is chosen by, and whether higher wins."""
        chosen = self.sweep.select if self.sweep is not None else None
        metric = chosen.metric if chosen is not None else self.metrics[0]
        mode = chosen.mode if chosen is not None else None
        return metric, (mode == "max") if mode is not None else METRICS[metric].higher_is_better

    @property
    def resolved_task(self) -> str:
        """``classification`` or ``regression``."""
        return self.task or METRICS[self.metrics[0]].task


def parse_gate(condition: str) -> tuple[str, float]:
    """Split ``">= 0.75"`` into ``(">=", 0.75)``."""
    match = _GATE.match(condition)
    if match is None:  # schema validation has already rejected it
        raise ValueError(condition)
    return match.group(1), float(match.group(2))
