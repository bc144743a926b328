"""Metrics on a hand-made case, checked by hand and against scikit-learn."""

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from kddad.evaluation import (
    FPR_TARGETS,
    category_metrics,
    category_roc,
    detection_metrics,
    first_occurrences,
    pr_points,
    recall_at_fpr,
    roc_points,
)


def test_metrics_on_a_hand_made_case():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.05, 0.8, 0.7, 0.35, 0.95])
    category = np.array(["normal"] * 6 + ["dos", "dos", "r2l", "probe"])
    label = np.array(["normal"] * 6 + ["smurf", "neptune", "guess_passwd", "satan"])
    m = detection_metrics(y, scores, threshold=0.5, category=category, label=label)
    # by hand: flagged = rows 3, 6, 7, 9 → tp 3 (6, 7, 9), fp 1 (3), fn 1 (8), tn 5
    assert m["confusion"] == {"tn": 5, "fp": 1, "fn": 1, "tp": 3}
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(0.75) and m["accuracy"] == pytest.approx(0.8)
    assert m["fpr"] == pytest.approx(1 / 6)
    pred = scores > 0.5
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, scores))
    # ROC-AUC by hand: of the 24 (outlier, normal) pairs, the outlier scores higher in 5 + 5 + 4 + 6
    assert m["roc_auc"] == pytest.approx(20 / 24)
    cats = m["categories"]
    assert [c for c in cats] == ["dos", "probe", "r2l", "macro", "inliers"]
    assert {c: (cats[c]["rows"], cats[c]["recall"]) for c in ("dos", "probe", "r2l")} == {
        "dos": (2, 1.0),
        "probe": (1, 1.0),
        "r2l": (1, 0.0),
    }
    # each category against the 6 normals: dos (0.8, 0.7) beats 5 and 5 of them, r2l (0.35) 4, probe 6
    assert cats["dos"]["roc_auc"] == pytest.approx(10 / 12) and cats["r2l"]["roc_auc"] == pytest.approx(4 / 6)
    assert cats["probe"]["roc_auc"] == 1.0
    assert cats["macro"]["roc_auc"] == pytest.approx((10 / 12 + 1 + 4 / 6) / 3)
    assert cats["macro"]["recall"] == pytest.approx(2 / 3) and cats["macro"]["categories"] == 3
    assert cats["inliers"] == {"rows": 6, "fpr": pytest.approx(1 / 6)}
    assert m["recall_by_attack"]["guess_passwd"] == {"recall": 0.0, "rows": 1}
    assert set(m["recall_by_attack"]) == {"smurf", "neptune", "guess_passwd", "satan"}


def test_curves_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = rng.normal(size=200) + y
    roc = roc_points(y, scores)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(skm.roc_auc_score(y, scores))
    pr = pr_points(y, scores)
    assert pr["recall"].iloc[-1] == 0 and pr["precision"].iloc[-1] == 1


def test_one_class_only_gives_nan_aucs_not_a_crash():
    m = detection_metrics(np.zeros(5), np.arange(5.0), threshold=2.5)
    assert np.isnan(m["roc_auc"]) and m["confusion"]["fp"] == 2 and m["recall"] == 0


def test_per_category_recall_follows_the_outlier_class_when_normal_traffic_is_the_anomaly():
    """split=dagmm: the outliers are normal connections; attack categories are inliers there."""
    y = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.95, 0.3])
    category = np.array(["normal", "normal", "normal", "dos", "dos", "probe"])
    label = np.array(["normal", "normal", "normal", "smurf", "smurf", "satan"])
    m = detection_metrics(y, scores, 0.5, category, label)
    assert m["categories"]["normal"]["recall"] == pytest.approx(2 / 3) and m["categories"]["normal"]["rows"] == 3
    assert m["categories"]["macro"]["roc_auc"] == pytest.approx(m["roc_auc"])  # one category: the whole
    assert m["recall_by_attack"] == {"normal": {"recall": pytest.approx(2 / 3), "rows": 3}}


def _best_recall_by_brute_force(normal: np.ndarray, attack: np.ndarray, fpr: float) -> float:
    """Try every cut: the best recall among cuts flagging at most ``fpr`` of the normal rows."""
    cuts = np.r_[np.unique(np.r_[normal, attack]), np.inf]
    ok = [(attack > c).mean() for c in cuts if (normal > c).mean() <= fpr + 1e-12]
    return max(ok)


@pytest.mark.parametrize("tied", [False, True])
def test_recall_at_a_fixed_false_positive_rate_is_the_best_allowed_and_the_roc_agrees(tied):
    rng = np.random.default_rng(1)
    normal, attack = rng.normal(size=2_000), rng.normal(2, 1, size=300)
    if tied:  # many equal scores, as repeated KDD rows give
        normal, attack = np.round(normal, 1), np.round(attack, 1)
    y = np.r_[np.zeros(len(normal)), np.ones(len(attack))]
    curve = category_roc(y, np.r_[normal, attack], np.array(["x"] * len(y)), np.array(FPR_TARGETS))
    for i, fpr in enumerate(FPR_TARGETS):
        want = _best_recall_by_brute_force(normal, attack, fpr)
        assert recall_at_fpr(normal, attack, fpr) == pytest.approx(want)
        assert curve["x"].iloc[i] == pytest.approx(want)  # the plotted curve says the same


def test_a_category_of_one_row_is_reported_with_its_count_and_counts_in_the_macro():
    y = np.array([0] * 100 + [1] * 51)
    scores = np.r_[np.linspace(0, 1, 100), np.full(50, 5.0), 0.5]
    category = np.array(["normal"] * 100 + ["dos"] * 50 + ["u2r"])
    cats = category_metrics(y, scores, 0.9, category)
    assert cats["u2r"]["rows"] == 1 and cats["u2r"]["roc_auc"] == pytest.approx(0.5, abs=0.01)
    assert cats["dos"]["roc_auc"] == 1.0
    assert cats["macro"]["roc_auc"] == pytest.approx((1 + cats["u2r"]["roc_auc"]) / 2)


def test_the_distinct_rows_view_counts_a_repeated_row_once():
    frame = pd.DataFrame({"a": [1, 1, 1, 2, 3, 3], "label": ["x", "x", "x", "x", "y", "z"]})
    assert first_occurrences(frame, ["a", "label"]).tolist() == [True, False, False, True, True, True]
