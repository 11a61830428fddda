"""A dataset's own drift check (``drift:``): the older half of its rows against the newer half.

A warning check: the data is stored either way. A failing check says what drifted and by how
much in its description (what the Dagster UI shows for the check), and is alerted, as drift
found by the retrain sensor is, with links to the Dagster run and the dataset.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.spec.schema import DriftCheck
from resources.alerts import Alert
from resources.drift import DriftDetector
from resources.errors import DataError

DRIFT_CHECK = "drift"


def drift_check(
    drift: DriftCheck, frame: Any, detector: DriftDetector, where: str, asset: str, run_id: str
) -> tuple[dg.AssetCheckResult, Alert | None, str]:
    """The check's result, its alert when it fails (else None), and a short line for the progress output."""
    half = len(frame) // 2
    missing = [c for c in drift.columns or [] if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: drift columns {missing} are not in the dataset")
    scored = frame[drift.columns] if drift.columns else frame
    scores = detector.scores(scored.iloc[:half], scored.iloc[half:], drift.method)
    worst = max(scores.values(), default=0.0)
    passed = worst <= drift.threshold
    feature = max(scores, key=lambda c: scores[c]) if scores else None
    on = f" on {feature}" if feature is not None else ""
    if passed:
        description = f"{drift.method} drift {worst:.3f}{on} is within its threshold {drift.threshold}"
    else:
        drifted = sorted((c for c, s in scores.items() if s > drift.threshold), key=lambda c: -scores[c])
        description = (
            f"{drift.method} drift {worst:.3f}{on} is above its threshold {drift.threshold}: "
            f"the newer half of the rows differs from the older half ({', '.join(map(str, drifted))})"
        )
    result = dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "max_score": worst,
            "threshold": drift.threshold,
            **{f"score_{c}": s for c, s in scores.items()},
        },
    )
    alert = None
    if not passed:
        fields = {"score": f"{worst:.3f}", "threshold": str(drift.threshold), "worst": str(feature)}
        alert = Alert("drift", f"{asset}: drift detected", description, asset, fields=fields, run_id=run_id)
    return result, alert, f"{drift.method} drift {worst:.3f} (threshold {drift.threshold})"
