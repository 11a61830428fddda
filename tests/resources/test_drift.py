"""The drift statistics against scipy on known distributions, and the retrain policy's parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from assets.spec.schedules import cron_problem, parse_duration
from resources.drift import StatisticalDriftDetector, ks_statistic, quantile_edges
from resources.errors import DataError

RNG = np.random.default_rng(0)


def _frames(rows: int, shift: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame(
        {
            "x": rng.normal(0, 1, rows),
            "n": rng.poisson(3, rows),
            "plan": pd.Series(rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]), dtype="str"),
        }
    )
    current = pd.DataFrame(
        {
            "x": rng.normal(shift, 1, rows),
            "n": rng.poisson(3 + shift, rows),
            "plan": pd.Series(
                rng.choice(["a", "b", "c"], rows, p=[0.5 - shift / 4, 0.3, 0.2 + shift / 4]), dtype="str"
            ),
        }
    )
    return reference, current


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        (RNG.normal(0, 1, 5000), RNG.normal(0, 1, 4000)),
        (RNG.normal(0, 1, 5000), RNG.normal(0.3, 1.2, 3000)),
        (RNG.exponential(1, 2000), RNG.uniform(0, 3, 2500)),
        (RNG.integers(0, 5, 3000).astype(float), RNG.integers(1, 6, 2000).astype(float)),  # many ties
        (np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0, 2.0])),
    ],
)
def test_ks_is_scipys_statistic(ref, cur):
    expected = stats.ks_2samp(ref, cur).statistic
    assert ks_statistic(np.sort(ref), np.sort(cur)) == pytest.approx(expected, abs=1e-12)
    result = StatisticalDriftDetector().compare(pd.DataFrame({"f": ref}), pd.DataFrame({"f": cur}), "ks", 0.1, ["f"])
    assert result.features[0].score == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.2, 1.0])
def test_psi_is_the_symmetric_kl_divergence_of_the_reference_deciles(shift):
    ref, cur = RNG.normal(0, 1, 20_000), RNG.normal(shift, 1, 20_000)
    # Independently: numpy's histogram over the reference's deciles, scipy's KL divergence both ways.
    assert np.allclose(
        quantile_edges(np.sort(ref), 10), np.quantile(ref, np.linspace(0, 1, 11))[1:-1], rtol=0, atol=1e-12
    )
    edges = np.concatenate([[-np.inf], quantile_edges(np.sort(ref), 10), [np.inf]])
    expected_share = np.histogram(ref, edges)[0] / len(ref)
    actual_share = np.histogram(cur, edges)[0] / len(cur)
    expected = stats.entropy(actual_share, expected_share) + stats.entropy(expected_share, actual_share)
    result = StatisticalDriftDetector().compare(pd.DataFrame({"f": ref}), pd.DataFrame({"f": cur}), "psi", 0.2, ["f"])
    assert result.features[0].score == pytest.approx(expected, rel=1e-9)
    # A shift of d standard deviations has a PSI a little under d**2 (the limit for fine bins).
    assert result.features[0].score == pytest.approx(shift**2, abs=0.02 + 0.15 * shift**2)


def test_chi2_is_cramers_v_of_scipys_chi_square_for_categories_and_bins():
    reference, current = _frames(10_000, 0.4)
    result = StatisticalDriftDetector().compare(reference, current, "chi2", 0.1, ["plan", "x"])
    plan, x = result.features
    table = pd.crosstab(
        np.r_[np.zeros(len(reference)), np.ones(len(current))],
        np.r_[reference.plan.to_numpy(), current.plan.to_numpy()],
    )
    chi2 = stats.chi2_contingency(table.to_numpy(), correction=False).statistic
    assert (plan.kind, plan.statistic) == ("categorical", "chi2")
    assert plan.score == pytest.approx(np.sqrt(chi2 / (len(reference) + len(current))), rel=1e-9)
    edges = np.concatenate([[-np.inf], quantile_edges(np.sort(reference.x.to_numpy()), 10), [np.inf]])
    counts = np.vstack([np.histogram(reference.x, edges)[0], np.histogram(current.x, edges)[0]])
    chi2 = stats.chi2_contingency(counts, correction=False).statistic
    assert (x.kind, x.statistic) == ("numeric", "chi2")
    assert x.score == pytest.approx(np.sqrt(chi2 / counts.sum()), rel=1e-9)


def test_the_same_distribution_scores_near_zero_and_a_shift_is_flagged():
    same = StatisticalDriftDetector().compare(*_frames(20_000, 0.0), "psi", 0.1, ["x", "n", "plan"])
    assert not same.drifted and same.score < 0.01
    moved = StatisticalDriftDetector().compare(*_frames(20_000, 0.8), "psi", 0.1, ["x", "n", "plan"])
    assert moved.drifted and {f.feature for f in moved.features if f.drifted} == {"x", "n", "plan"}
    assert moved.score == max(f.score for f in moved.features) and moved.worst in {"x", "n", "plan"}
    assert "drifted (x, n, plan)" in moved.summary()


def test_categorical_features_count_missing_values_and_new_categories():
    reference = pd.DataFrame({"plan": pd.Series(["a", "b", None, "a"] * 100, dtype="str")})
    current = pd.DataFrame({"plan": pd.Series(["a", "b", "z", "a"] * 100, dtype="str")})
    (plan,) = StatisticalDriftDetector().compare(reference, current, "psi", 0.2, ["plan"]).features
    assert set(plan.bins) == {"a", "b", "(missing)", "z"}
    assert plan.drifted and plan.statistic == "psi" and plan.kind == "categorical"


def test_parallel_scoring_gives_exactly_the_sequential_result():
    reference, current = _frames(50_000, 0.3)
    features = ["x", "n", "plan"]
    for method in ("psi", "ks", "chi2"):
        one = StatisticalDriftDetector(workers=1).compare(reference, current, method, 0.2, features)
        many = StatisticalDriftDetector(workers=3).compare(reference, current, method, 0.2, features)
        assert one == many


def test_a_missing_column_or_an_empty_feature_is_a_data_error():
    reference, current = _frames(100, 0.0)
    with pytest.raises(DataError, match=r"drift features \['x'\] are not columns of the current data"):
        StatisticalDriftDetector().compare(reference, current.drop(columns="x"), "psi", 0.2, ["x"])
    with pytest.raises(DataError, match="no values in the current data"):
        StatisticalDriftDetector().compare(reference, current.assign(x=np.nan), "psi", 0.2, ["x"])


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["6 hours", "6H", "0h", "-1h", "h", "1.5h", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="is not a duration like 30m, 6h or 1d"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text",
    [
        "0 3 * * 1",
        "*/15 * * * *",
        "0 0 1 jan *",
        "0 9-17 * * mon-fri",
        "5,35 1,13 * * 0",
        "0 3 * * 7",
        "0 3 * *",
        "0 24 * * *",
        "60 * * * *",
        "0 3 * * 8",
        "0 3 32 * *",
        "*/0 * * * *",
        "0 3 * * funday",
        "every day",
        "0 3 * * 1 2020",
        "1-5/2 * * * *",
        "5/2 * * * *",
    ],
)
def test_cron_checks_agree_with_croniter_which_runs_the_schedule(text):
    from croniter import croniter

    assert (cron_problem(text) is None) == croniter.is_valid(text), cron_problem(text)


@pytest.mark.parametrize("text", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *", "*/ * * * *", "*/00 * * * *", "0 0 29 2 *"])
def test_a_cron_that_never_ticks_or_does_not_parse_is_refused_unless_croniter_can_run_it(text):
    from croniter import CroniterError

    from assets.spec.schedules import last_tick

    try:
        runs = last_tick(text, datetime(2030, 1, 1, tzinfo=UTC).timestamp()) is not None
    except CroniterError:  # croniter refuses to parse it; any other error is a bug and fails here
        runs = False
    assert (cron_problem(text) is None) == runs, cron_problem(text)


def test_a_schedule_fires_at_the_first_tick_after_the_first_new_data_however_much_more_lands():
    from assets.spec.schedules import schedule_due

    monday_1am = datetime(2026, 11, 23, 1, 0, tzinfo=UTC).timestamp()
    hour = 3600
    # Trained Monday 01:00; data at 02:00; the 03:00 tick passes; more data at 05:00.
    due, tick = schedule_due("0 3 * * 1", monday_1am + hour, monday_1am + 6 * hour + 300)
    assert due and tick == monday_1am + 2 * hour
    # Before the first tick after the data: not due.
    assert not schedule_due("0 3 * * 1", monday_1am + hour, monday_1am + 1.5 * hour)[0]


def test_a_feature_whose_type_changed_is_a_data_error_not_drift():
    reference = pd.DataFrame({"x": np.arange(100.0), "flag": [True, False] * 50})
    with pytest.raises(DataError, match="drift feature 'x' changed type: float64 in the reference, str now"):
        StatisticalDriftDetector().compare(reference, reference.assign(x=reference.x.astype(str)), "psi", 0.2, ["x"])
    with pytest.raises(DataError, match="drift feature 'flag' changed type: bool in the reference, int64 now"):
        StatisticalDriftDetector().compare(reference, reference.assign(flag=[1, 0] * 50), "psi", 0.2, ["flag"])


def test_times_are_compared_as_numbers():
    reference = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=2000, freq="h")})
    shifted = pd.DataFrame({"t": pd.date_range("2026-01-01 00:30", periods=2000, freq="h")})
    (t,) = StatisticalDriftDetector().compare(reference, shifted, "ks", 0.2, ["t"]).features
    assert t.kind == "numeric" and t.score == pytest.approx(1 / 2000, abs=1e-9)
