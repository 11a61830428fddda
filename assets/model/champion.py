"""Score the current champion against a new version on rows neither of them trained on.

The comparison set is the new version's test rows minus every row the champion trained on,
found again from the split the champion recorded (:class:`training.SplitRecord`): rows that
were appended since, or moved by a changed split definition, can never favour the champion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assets.model import training
from resources.errors import SlipwayError
from resources.redact import redact
from resources.registry import ABANDONED_TAG, ModelRegistry

SPLIT_TAG = "slipway.split"


@dataclass(frozen=True)
class Comparison:
    """Champion and challenger on one comparison set, or why they could not be compared."""

    version: str
    metric: str
    champion_score: float | None = None
    challenger_score: float | None = None
    rows: int = 0
    problem: str | None = None
    on: str = "rows neither trained on"
    # Why the champion's model could not be loaded; ``lost`` when its files are gone (it never can be again).
    unloadable: str | None = None
    lost: bool = False


def compare(
    version: str,
    champion: Any,
    champion_tags: dict[str, str],
    challenger: training.Trained,
    frame: Any,
    target: str,
    metric: str,
    champion_rows: Callable[[], bytes | None] = lambda: None,
) -> Comparison:
    """Score ``champion`` (registered ``version``) and ``challenger`` on rows neither trained on.

    ``frame`` is the challenger's training dataset, or its evaluation set when it declares one
    (``evaluate_on``): then both are scored on its rows the champion did not train on.
    ``champion_rows`` reads the training rows a champion that trained on a whole dataset stored
    (:data:`training.TRAINING_ROWS_FILE`).

    Returns a :class:`Comparison` with ``problem`` set, instead of raising, when the champion
    cannot be scored: its split was not recorded, its columns are gone, or it fails to predict.
    """
    recorded = champion_tags.get(SPLIT_TAG)
    if recorded is None:
        return Comparison(version, metric, problem="it recorded no split, so the rows it trained on are unknown")
    try:
        champion_record = training.parse_record(recorded)
    except (ValueError, KeyError) as exc:
        return Comparison(version, metric, problem=f"its training rows cannot be found again ({exc})")
    own = challenger.holdout.record
    if isinstance(own, training.EvaluationRecord):
        # The new version trained on none of the evaluation set (checked when it trained); the
        # champion's training rows are left out: found again from its split, or from the rows
        # it stored with its run when it trained on a whole dataset.
        on = f"rows of evaluation set {own.evaluate_on} neither trained on"
        try:
            if isinstance(champion_record, training.SplitRecord):
                rows = champion_record.test_mask(frame)
            else:
                stored = champion_rows()
                if stored is None:
                    return Comparison(version, metric, problem="it stored no record of the rows it trained on")
                import numpy as np

                rows = training.held_out(frame, champion_record.columns, np.frombuffer(stored, dtype=np.uint64))
        except (ValueError, KeyError) as exc:
            return Comparison(version, metric, problem=f"its training rows cannot be found again ({exc})")
    elif isinstance(champion_record, training.EvaluationRecord):
        return Comparison(
            version,
            metric,
            problem=f"it trained on every row of its dataset (it was scored on {champion_record.evaluate_on}), "
            "so no row is held out from it",
        )
    else:
        try:
            rows = own.test_mask(frame) & champion_record.test_mask(frame)
        except (ValueError, KeyError) as exc:
            return Comparison(version, metric, problem=f"its training rows cannot be found again ({exc})")
        on = "rows neither trained on"
    if not rows.any():
        return Comparison(version, metric, problem="no row is outside both training sets")
    # Each model is scored on its own features (the champion's are in its record), on the same
    # rows with the same labels.
    champion_features = [c for c in champion_record.columns if c != target]
    y = frame.loc[rows, target]
    try:
        champion_score = training.evaluate(champion, [metric], frame.loc[rows, champion_features], y)[metric]
    except Exception as exc:  # any failure to predict means "cannot be scored": recorded, not hidden
        return Comparison(version, metric, problem=f"it cannot score the comparison rows ({type(exc).__name__}: {exc})")
    x = frame.loc[rows, list(challenger.holdout.x_test.columns)]
    try:
        challenger_score = training.evaluate(challenger.model, [metric], x, y)[metric]
    except SlipwayError as exc:
        return Comparison(version, metric, problem=f"the new version cannot be scored on the comparison rows ({exc})")
    return Comparison(version, metric, champion_score, challenger_score, int(rows.sum()), on=on)


def with_champion(
    registry: ModelRegistry,
    name: str,
    version: str | None,
    metric: str,
    trained: training.Trained,
    frame: Any,
    target: str,
) -> Comparison | None:
    """Champion ``version`` of registered model ``name`` and the new version on rows neither trained on.

    None when there is no champion, or it is an abandoned version (registered by a training that
    died, and left holding the alias because it recorded no predecessor). A champion that cannot
    be loaded is a comparison with ``problem`` set; ``lost`` when its files are gone.
    """
    if version is None:
        return None
    tags = registry.version_tags(name, version) or {}
    if ABANDONED_TAG in tags:  # a leftover of a crash: nothing to beat
        return None
    try:
        model = registry.load(name, version)
    except Exception as exc:  # its artifacts are gone or unreadable: it cannot be scored
        # Gone for good (its files deleted) is a champion that can never serve again; any other
        # failure to load (a store that did not answer, say) is not taken for that.
        gone = registry.unloadable(name, version)
        if gone is not None:
            return Comparison(version, metric, problem=f"cannot be loaded ({gone})", unloadable=gone, lost=True)
        error = redact(f"{type(exc).__name__}: {exc}")
        return Comparison(version, metric, problem=f"it cannot be loaded ({error})", unloadable=error)
    return compare(
        version,
        model,
        tags,
        trained,
        frame,
        target,
        metric,
        champion_rows=lambda: registry.run_file(name, version, training.TRAINING_ROWS_FILE),
    )


def is_nan(value: float | None) -> bool:
    """True for a NaN score (which never promotes)."""
    return value is not None and math.isnan(value)
