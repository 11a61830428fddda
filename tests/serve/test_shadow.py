"""Shadow comparison (assets/serve/shadow.py): champion and shadow paired by request, logged as MLflow metrics."""

from __future__ import annotations

import pytest

from assets.serve.shadow import ShadowComparison


class _Tracker:
    def __init__(self, fail: bool = False):
        self.runs, self.logged, self.ended, self.fail = [], [], [], fail

    def start_run(self, experiment, name, tags, start_ms):
        if self.fail:
            raise ConnectionError("https://admin:hunter2@mlflow.example is down")
        self.runs.append((experiment, name, tags))
        return name

    def log(self, run, params, metrics, tags):
        self.logged.append((run, metrics))

    def end_run(self, run, ok):
        self.ended.append(run)


def test_halves_are_paired_in_either_order_and_agreement_is_counted_per_pair_of_versions():
    tracker = _Tracker()
    shadow = ShadowComparison(tracker, "shop.clf")
    shadow.add("r1", "answered", "1", [0, 1, 1])
    shadow.add("r1", "shadow", "2", [0, 0, 1])
    shadow.add("r2", "shadow", "2", [1])  # the shadow's half first
    shadow.add("r2", "answered", "1", [1])
    shadow.add("r3", "answered", "1", [5])  # its shadow never comes
    agreement = shadow.pairs[("1", "2")]
    assert (agreement.rows, agreement.agreed) == (4, 3)
    assert agreement.metrics() == {"shadow_rows": 4.0, "agreement": 0.75, "mean_abs_difference": 0.25}
    shadow.report()
    shadow.report()  # nothing new: nothing logged
    assert tracker.runs == [
        (
            "shop",
            "shadow-clf-v1-vs-v2",
            {
                "slipway.shadow.model": "shop.clf",
                "slipway.shadow.answered_version": "1",
                "slipway.shadow.shadow_version": "2",
            },
        )
    ]
    assert tracker.logged == [("shadow-clf-v1-vs-v2", agreement.metrics())]
    shadow.close()
    assert tracker.ended == ["shadow-clf-v1-vs-v2"]


def test_halves_that_never_pair_are_forgotten_and_a_tracker_that_fails_is_said_not_raised(caplog):
    shadow = ShadowComparison(_Tracker(fail=True), "shop.clf", max_waiting=3)
    for i in range(10):
        shadow.add(f"r{i}", "answered", "1", [i])
    assert len(shadow._waiting) == 3
    shadow.add("r0", "shadow", "2", [0])  # its answer was forgotten: waits itself, counts nothing
    assert shadow.pairs == {}
    shadow.add("r9", "shadow", "2", ["x"])
    shadow.report()
    assert "shadow comparison not logged now" in caplog.text and "hunter2" not in caplog.text
    assert shadow.pairs[("1", "2")].metrics() == pytest.approx({"shadow_rows": 1.0, "agreement": 0.0})
