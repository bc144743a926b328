"""Metrics on a hand-made case, checked by hand and against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as skm

from kddad.evaluation import detection_metrics, pr_points, roc_points


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
    assert m["recall_by_category"] == {
        "dos": {"recall": 1.0, "rows": 2},
        "probe": {"recall": 1.0, "rows": 1},
        "r2l": {"recall": 0.0, "rows": 1},
    }
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
    assert m["recall_by_category"] == {"normal": {"recall": pytest.approx(2 / 3), "rows": 3}}
    assert m["recall_by_attack"] == {"normal": {"recall": pytest.approx(2 / 3), "rows": 3}}
