"""Import allow-list, promotion decisions, metrics and drift scores."""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pytest

from assets.model.champion import Comparison
from assets.model.promotion import CHALLENGER, Decision, decide, evaluate_gates, primary_metric
from assets.spec.imports import ESTIMATOR, is_allowed, resolve
from assets.spec.model_spec import Promote
from resources.drift import StatisticalDriftDetector
from resources.errors import DefinitionError

ALLOWED = ["sklearn", "lightgbm", "definitions"]


def test_allow_list_is_by_module_prefix():
    assert is_allowed("sklearn.ensemble.RandomForestClassifier", ALLOWED)
    assert is_allowed("definitions.defs.x:fn", ALLOWED)
    assert not is_allowed("sklearnx.Thing", ALLOWED)
    assert not is_allowed("os:system", ALLOWED)


def test_outside_allow_list_is_refused_before_import(tmp_path, monkeypatch):
    # A module nothing has imported yet, which leaves a mark when it is imported.
    (tmp_path / "slipway_canary.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\ndef run(): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        DefinitionError,
        match=re.escape(
            "here: import path 'slipway_canary:run' is outside the stack's allow-list (sklearn, lightgbm, definitions); add its package to `allowed_imports` in the stack"
        ),
    ):
        resolve("slipway_canary:run", ALLOWED, "here")
    assert "slipway_canary" not in sys.modules and not (tmp_path / "imported").exists()
    assert resolve("slipway_canary:run", ["slipway_canary"], "here").__name__ == "run"  # the canary works
    assert (tmp_path / "imported").exists()
    monkeypatch.delitem(sys.modules, "slipway_canary")


def test_misspelled_estimator_suggests():
    with pytest.raises(
        DefinitionError,
        match=re.escape(
            "here: sklearn.ensemble has no 'RandomForestClasifier'; did you mean 'RandomForestClassifier'?"
        ),
    ):
        resolve("sklearn.ensemble.RandomForestClasifier", ALLOWED, "here", ESTIMATOR)


def test_misspelled_module_suggests():
    with pytest.raises(
        DefinitionError,
        match=re.escape(
            "here: cannot import 'sklearn.ensembl.RandomForestClassifier': no module 'sklearn.ensembl'; did you mean 'ensemble'?"
        ),
    ):
        resolve("sklearn.ensembl.RandomForestClassifier", ALLOWED, "here", ESTIMATOR)


def _vs(champion: float, challenger: float, version: str = "1") -> Comparison:
    return Comparison(version, "m", champion_score=champion, challenger_score=challenger, rows=100)


def test_promotion_rules():
    promote = Promote(gates={"roc_auc": ">= 0.75"})
    passed = evaluate_gates(promote, {"roc_auc": 0.8})
    failed = evaluate_gates(promote, {"roc_auc": 0.7})
    assert decide(promote, passed, "roc_auc", 0.8, None).alias == "champion"
    assert decide(promote, passed, "roc_auc", 0.8, _vs(0.79, 0.8)).alias == "champion"
    assert decide(promote, passed, "roc_auc", 0.8, _vs(0.80, 0.8)).alias == CHALLENGER
    # Compared on rows neither trained on: the challenger's own holdout score does not decide.
    assert decide(promote, passed, "roc_auc", 0.99, _vs(0.80, 0.79)).alias == CHALLENGER
    assert decide(promote, failed, "roc_auc", 0.7, None).alias is None
    assert "gate failed: roc_auc=0.7 (needs >= 0.75)" == decide(promote, failed, "roc_auc", 0.7, None).reason


def test_lower_is_better_metric_and_primary():
    promote = Promote(gates={})
    assert primary_metric(promote, ["rmse", "r2"]) == "rmse"
    assert decide(promote, [], "rmse", 1.0, _vs(2.0, 1.0)).alias == "champion"
    assert decide(promote, [], "rmse", 3.0, _vs(2.0, 3.0)).alias == CHALLENGER
    assert decide(promote, [], "rmse", 2.0, _vs(2.0, 2.0)).alias == CHALLENGER  # a tie does not beat
    assert decide(Promote(must_beat=None), [], "rmse", 3.0, None).alias == "champion"


def test_nan_never_promotes():
    promote = Promote(gates={"roc_auc": ">= 0.5"})
    nan = float("nan")
    gates = evaluate_gates(promote, {"roc_auc": nan})
    assert decide(promote, gates, "roc_auc", nan, None).alias is None
    assert decide(Promote(), [], "roc_auc", nan, None) == Decision(
        None, "roc_auc is NaN on the holdout; a NaN never promotes"
    )
    assert decide(Promote(), [], "roc_auc", 0.9, _vs(nan, 0.9, "4")) == Decision(
        CHALLENGER, "champion v4 keeps its alias: roc_auc is NaN on the 100 comparison rows"
    )


def test_champion_that_cannot_be_scored_keeps_its_alias():
    unscorable = Comparison("3", "r2", problem="it cannot be loaded (OSError: gone)")
    decision = decide(Promote(), [], "r2", 0.9, unscorable)
    assert decision == Decision(CHALLENGER, "champion v3 keeps its alias: it cannot be loaded (OSError: gone)")


def test_drift_scores_flag_shifted_columns():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000), "s": ["x"] * 2000})
    cur = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(1.5, 1, 2000), "s": ["y"] * 2000})
    detector = StatisticalDriftDetector()
    for method, threshold in (("ks", 0.2), ("psi", 0.2)):
        scores = detector.scores(ref, cur, method)
        assert set(scores) == {"a", "b"}
        assert scores["a"] < threshold < scores["b"]
    from scipy.stats import ks_2samp

    assert detector.scores(ref, cur, "ks")["b"] == pytest.approx(ks_2samp(ref["b"], cur["b"]).statistic)


def test_data_version_is_a_content_hash():
    from assets.spec.versions import frame_version

    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 0.25, 0.125]})
    assert frame_version(frame) == frame_version(frame.copy())
    assert frame_version(frame) != frame_version(frame.assign(b=[0.5, 0.25, 0.126]))
    assert frame_version(frame) != frame_version(frame.rename(columns={"b": "c"}))
    assert frame_version(frame) != frame_version(frame.astype({"a": "float64"}))


def test_averaged_metric_names_and_the_default_averaging():
    from assets.spec.metrics import METRICS, compute

    assert {"f1_macro", "f1_weighted", "precision_micro", "recall_macro", "roc_auc_ovo", "roc_auc_ovr_weighted"} <= set(
        METRICS
    )
    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 0, 2])
    from sklearn.metrics import f1_score

    assert compute("f1", y_true, y_pred, None) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert compute("f1_weighted", y_true, y_pred, None) == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    # On a binary target plain f1 is the positive class's, with or without probabilities computed.
    binary_true, binary_pred = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    expected = f1_score(binary_true, binary_pred)
    assert compute("f1", binary_true, binary_pred, None) == pytest.approx(expected)
    assert compute("f1", binary_true, binary_pred, proba) == pytest.approx(expected)
    assert compute("f1_macro", binary_true, binary_pred, None) != pytest.approx(expected)


def test_binary_metrics_follow_the_models_classes_including_string_labels():
    from sklearn.metrics import f1_score
    from sklearn.tree import DecisionTreeClassifier

    from assets.model.training import evaluate

    x = pd.DataFrame({"a": np.arange(60)})
    labels = np.where(np.arange(60) % 3 == 0, "yes", "no")
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, labels)
    scores = evaluate(model, ["f1", "roc_auc"], x, labels)
    assert scores["f1"] == pytest.approx(f1_score(labels, model.predict(x), pos_label="yes"))
    assert 0.0 <= scores["roc_auc"] <= 1.0
    # A three-class model scored on rows holding two of its classes is still multiclass (macro f1).
    y3 = np.arange(60) % 3
    model3 = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y3)
    rows = y3 < 2
    expected = f1_score(y3[rows], model3.predict(x[rows]), average="macro", labels=[0, 1, 2], zero_division=0)
    assert evaluate(model3, ["f1"], x[rows], y3[rows])["f1"] == pytest.approx(expected)


def test_a_tables_data_version_is_its_rows_in_any_order():
    """A SQL result without ORDER BY comes back in any order: the same rows must be the same version."""
    import numpy as np

    from assets.spec.versions import frame_version

    frame = pd.DataFrame({"a": [1, 2, 3, 3], "b": ["x", "y", "z", "z"]})
    assert frame_version(frame) == frame_version(frame.iloc[::-1].reset_index(drop=True))
    assert frame_version(frame) != frame_version(frame.drop_duplicates())  # a repeated row still counts
    assert frame_version(frame) != frame_version(frame.assign(b=["x", "z", "y", "z"]))  # rows, not columns

    from resources.query import DuckdbEngine

    run_query = DuckdbEngine().run

    big = pd.DataFrame({"k": np.arange(200_000) % 20_000, "v": np.arange(200_000)})
    versions = {
        frame_version(run_query("select k, sum(v) as s from t group by k", {"t": big}, "here")) for _ in range(6)
    }
    assert len(versions) == 1


def test_two_scores_that_differ_are_shown_with_the_digits_that_tell_them_apart():
    from assets.model.promotion import apart

    assert apart(0.8251, 0.8249) == ("0.8251", "0.8249")
    assert apart(0.82501, 0.82499) == ("0.82501", "0.82499")
    assert apart(0.825, 0.825) == ("0.825", "0.825")
    assert apart(1 / 3, 1 / 3 + 1e-12) == ("0.333333333333", "0.333333333334")
