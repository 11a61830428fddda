"""A model's ``sweep:`` block: the params to try, how many, in what order, and how the winner is chosen.

Part of the pipeline schema (``models.<name>.sweep``); like it, it imports neither Dagster nor
any ML library. :func:`expand` turns a sweep into its trials, deterministically: the same block
gives the same trials, in the same order, on every machine.

A param's values are a list (``[4, 8, 12]``: numbers, text, true/false, null), an inclusive range
(``{range: [100, 400, 100]}``: 100, 200, 300, 400), or, for a random sweep only, a continuous
interval (``{uniform: [0.01, 0.3]}``, ``{log_uniform: [1.0e-4, 0.1]}``; YAML reads ``1e-4``
without a dot as text, which an interval takes as the number it spells).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from assets.spec.fields import Closed

#: Most trials one sweep may expand to (a grid larger than this is refused, not sampled).
MAX_GRID = 100_000
MAX_TRIALS = 1000

Number = StrictInt | StrictFloat


class Span(Closed):
    """One param's values given as an interval rather than a list."""

    range: tuple[Number, Number, Number] | None = Field(
        default=None, description="[start, stop, step]: start, start+step, ... up to stop included."
    )
    uniform: tuple[Number, Number] | None = Field(default=None, description="[low, high]: random sweeps only.")
    log_uniform: tuple[Number, Number] | None = Field(
        default=None, description="[low, high], both above 0, drawn evenly in log scale: random sweeps only."
    )

    @model_validator(mode="before")
    @classmethod
    def _numbers_written_as_text(cls, data: Any) -> Any:
        # YAML 1.1 reads `1e-4` (no dot) as text: in an interval it can only mean the number.
        if isinstance(data, dict):
            return {k: [_number(v) for v in b] if isinstance(b, list) else b for k, b in data.items()}
        return data

    @model_validator(mode="after")
    def _one(self) -> Span:
        given = [k for k in ("range", "uniform", "log_uniform") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one of range: [start, stop, step], uniform: [low, high] or log_uniform: [low, high]")
        if self.range is not None:
            start, stop, step = self.range
            if step <= 0 or stop < start:
                raise ValueError(f"range {list(self.range)}: needs start <= stop and a step above 0")
            if (stop - start) / step >= MAX_GRID:
                raise ValueError(f"range {list(self.range)}: more than {MAX_GRID} values")
        for name in ("uniform", "log_uniform"):
            bounds = getattr(self, name)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{name} {list(bounds)}: needs low < high")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError(f"log_uniform {list(self.log_uniform)}: both bounds must be above 0")
        return self

    @property
    def continuous(self) -> bool:
        """True for an interval a grid cannot enumerate."""
        return self.range is None

    def values(self) -> list[Any]:
        """A range's values (start to stop included), as ints when all three are ints."""
        assert self.range is not None
        start, stop, step = self.range
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        if all(isinstance(v, int) for v in self.range):
            return [start + i * step for i in range(count)]
        return [round(start + i * step, 12) for i in range(count)]


class Select(Closed):
    """How the winning trial is chosen."""

    metric: str = Field(description="One of the model's metrics.")
    mode: Literal["max", "min"] | None = Field(default=None, description="Unset: the metric's better direction.")


class Sweep(Closed):
    """Train the model once per trial (a set of params), then register the best trial's params."""

    strategy: Literal["grid", "random"] = "grid"
    params: dict[str, list[Any] | Span] = Field(min_length=1, description="param -> its values to try.")
    max_trials: int | None = Field(
        default=None, ge=1, le=MAX_TRIALS, description="Most trials; a larger grid is sampled (with `seed`)."
    )
    seed: int | None = Field(default=None, description="Seed of a random sweep, or of a grid's sample.")
    parallelism: int = Field(default=1, ge=1, le=64, description="Trials at once (on a stack running steps apart).")
    min_success_ratio: float = Field(
        default=1.0, gt=0, le=1, description="Share of trials that must succeed for the sweep to pick a winner."
    )
    select: Select | None = Field(default=None, description="The winner's metric; the model's first metric if unset.")

    @field_validator("params")
    @classmethod
    def _values(cls, params: dict[str, Any]) -> dict[str, Any]:
        for name, values in params.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"{name}: an empty list gives no trial")
            if isinstance(values, list):
                for value in values:
                    if not isinstance(value, str | int | float | bool) and value is not None:
                        raise ValueError(
                            f"{name}: {value!r} is not a number, text, true/false or null (quote a date: text)"
                        )
                    if isinstance(value, float) and not math.isfinite(value):
                        raise ValueError(f"{name}: {value!r} is not a finite number")
        return params

    @model_validator(mode="after")
    def _check(self) -> Sweep:
        if self.strategy == "random":
            if self.seed is None:
                raise ValueError("a random sweep needs a `seed` (the same trials on every run)")
            if self.max_trials is None:
                raise ValueError("a random sweep needs `max_trials` (how many trials to draw)")
        else:
            continuous = [n for n, v in self.params.items() if isinstance(v, Span) and v.continuous]
            if continuous:
                raise ValueError(
                    f"params {continuous}: a grid cannot list a continuous interval; give values or a range, "
                    "or use strategy: random"
                )
            size = grid_size(self)
            if size > MAX_GRID:
                raise ValueError(f"the grid has {size} trials, more than {MAX_GRID}")
            if size > MAX_TRIALS and self.max_trials is None:
                raise ValueError(
                    f"the grid has {size} trials (a step each): set max_trials (at most {MAX_TRIALS}) to sample it"
                )
        return self


def _choices(values: list[Any] | Span) -> list[Any]:
    """The values a grid enumerates (none for an interval: a random sweep draws from it)."""
    if isinstance(values, Span):
        return values.values() if values.range is not None else []
    return list(values)


def grid_size(sweep: Sweep) -> int:
    """How many trials the full grid has (a random sweep: its ``max_trials``)."""
    if sweep.strategy == "random":
        return int(sweep.max_trials or 0)
    return math.prod(len(_choices(v)) for v in sweep.params.values())


@dataclass(frozen=True)
class Trial:
    """One trial: its params (the swept ones) and a short id that names it wherever it appears."""

    id: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        """``max_depth=4, n_estimators=100``."""
        return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in self.params.items())


def trial_id(params: dict[str, Any]) -> str:
    """A stable 12-hex id of a trial's params (the same params, the same id, in any order)."""
    return hashlib.blake2b(_canonical(params).encode(), digest_size=6).hexdigest()


def _canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class Expansion:
    """A sweep's trials, and what people are told about how they were chosen."""

    trials: list[Trial]
    note: str | None  # e.g. "a grid of 36, max_trials 24: 24 sampled with seed 0"


def expand(sweep: Sweep) -> Expansion:
    """The sweep's trials, in a deterministic order (a grid's, or the random draws').

    A grid larger than ``max_trials`` is sampled with ``seed`` (0 when unset); random draws that
    repeat a trial are kept once, and the note says how many were drawn.
    """
    names = list(sweep.params)
    rng = random.Random(sweep.seed if sweep.seed is not None else 0)
    note = None
    choices = {name: _choices(values) for name, values in sweep.params.items()}
    if sweep.strategy == "grid":
        grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*choices.values())]
        if sweep.max_trials is not None and len(grid) > sweep.max_trials:
            chosen = sorted(rng.sample(range(len(grid)), sweep.max_trials))
            note = (
                f"a grid of {len(grid)} trials, max_trials {sweep.max_trials}: {sweep.max_trials} sampled with seed "
                f"{sweep.seed if sweep.seed is not None else 0}"
            )
            grid = [grid[i] for i in chosen]
        drawn = grid
    else:
        drawn = [{n: _draw(rng, sweep.params[n], choices[n]) for n in names} for _ in range(int(sweep.max_trials or 0))]
    trials: dict[str, Trial] = {}
    ids: dict[str, str] = {}
    for params in drawn:
        text, tid = _canonical(params), trial_id(params)
        if ids.setdefault(tid, text) != text:  # 48 bits: never seen, but never silently merged either
            raise ValueError(f"trials {ids[tid]} and {text} have the same id {tid}")
        trials.setdefault(text, Trial(tid, params))
    if len(trials) < len(drawn):
        repeats = f"{len(drawn) - len(trials)} repeated trials are trained once"
        note = f"{note}; {repeats}" if note else f"{len(drawn)} draws gave {len(trials)} distinct trials ({repeats})"
    return Expansion(list(trials.values()), note)


def _draw(rng: random.Random, values: list[Any] | Span, choices: list[Any]) -> Any:
    if isinstance(values, Span) and values.uniform is not None:
        return round(rng.uniform(*values.uniform), 12)
    if isinstance(values, Span) and values.log_uniform is not None:
        low, high = values.log_uniform
        return round(math.exp(rng.uniform(math.log(low), math.log(high))), 12)
    return rng.choice(choices)
