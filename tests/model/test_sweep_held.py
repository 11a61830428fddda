"""The winning trial's model reused in-process: only the trial the sweep chose, only once, per sweep."""

from __future__ import annotations

from assets.model import sweep
from resources.tracker import FoundRun, TrackedRun


def _found(shared: str, key: str) -> FoundRun:
    tags = {sweep.CONTEXT_TAG: shared, sweep.TRIAL_KEY_TAG: key}
    return FoundRun(TrackedRun("r", "e", "file:///x"), "FINISHED", tags, {}, 0)


def test_the_best_model_of_each_sweep_is_held_and_handed_over_once():
    sweep.hold("s1", "s1-a", 0.5, True, "model a")
    sweep.hold("s1", "s1-b", 0.7, True, "model b")  # better: replaces a
    sweep.hold("s1", "s1-c", 0.6, True, "model c")  # worse: kept out
    sweep.hold("s2", "s2-a", 3.0, False, "model x")
    sweep.hold("s2", "s2-b", 2.0, False, "model y")  # lower is better here
    assert sweep.take(_found("s1", "s1-b")) == "model b"
    assert sweep.take(_found("s1", "s1-b")) is None  # handed over once
    assert sweep.take(_found("s2", "s2-b")) == "model y"


def test_a_winner_this_process_did_not_fit_best_is_not_handed_a_model():
    sweep.hold("s3", "s3-a", 0.9, True, "model a")
    # The sweep chose another trial (a cached one, or a tie broken otherwise): it is fitted again.
    assert sweep.take(_found("s3", "s3-z")) is None
    assert sweep.take(_found("s3", "s3-a")) is None  # and what was held is let go
    assert sweep.take(None) is None


def test_the_success_ratio_needs_whole_trials_without_float_rounding():
    assert sweep.needed(0.55, 100) == 55 and sweep.needed(0.8, 6) == 5 and sweep.needed(1.0, 6) == 6
    assert sweep.needed(0.01, 3) == 1  # at least one trial, always
