"""Metrics on a hand-made case, checked by hand and against scikit-learn; the views they are taken on
and the report files written from those views."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from kddad.data import fields
from kddad.evaluation import (
    FPR_TARGETS,
    HEADLINE,
    category_metrics,
    category_roc,
    detection_metrics,
    first_occurrences,
    pr_points,
    recall_at_fpr,
    roc_points,
)
from kddad.evaluation.views import HARD_DIFFICULTY, View, below_difficulty, beside, scored, subset, view_metrics
from kddad.reports import alerts, figure_set, metrics_file, plots, table
from kddad.reports.metrics_file import ReportViews


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


def _frame(rows: list[int], labels: list[str], categories: list[str], **extra) -> pd.DataFrame:
    """Split rows as the split stage writes them: every feature column, row id, label, category."""
    n = len(rows)
    frame = pd.DataFrame({f: np.zeros(n) for f in fields.FEATURES})
    frame["duration"] = np.asarray(rows, dtype=float)  # distinct rows stay distinct
    frame[fields.ROW], frame[fields.LABEL], frame[fields.CATEGORY] = rows, labels, categories
    for k, v in extra.items():
        frame[k] = v
    return frame


class _Summing:
    """Scores a row by the sum of its features; feature scores are the features."""

    def score(self, X):
        return X.sum(1), X


def _split(name: str, y: list[int], rows: list[int], **extra) -> View:
    labels = ["smurf" if o else "normal" for o in y]
    categories = ["dos" if o else "normal" for o in y]
    X = np.asarray(rows, dtype=float)[:, None] / 10
    return scored(name, _frame(rows, labels, categories, **extra), X, np.asarray(y), _Summing(), keep_arrays=True)


def test_a_scored_split_keeps_its_arrays_only_when_asked():
    frame = _frame([0, 1], ["normal", "smurf"], ["normal", "dos"])
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    bare = scored("s", frame, X, np.array([0, 1]), _Summing())
    assert bare.scores.tolist() == [3.0, 7.0] and bare.X is None and bare.feature_scores is None
    kept = scored("s", frame, X, np.array([0, 1]), _Summing(), keep_arrays=True)
    assert kept.X is X and kept.feature_scores is X and kept.category.tolist() == ["normal", "dos"]


def test_the_pooled_view_is_the_normals_of_one_view_followed_by_every_row_of_the_pool():
    a = _split("test", [0, 1, 0, 1, 0], [10, 11, 12, 13, 14])
    pool = _split("attacks", [1, 1, 1], [20, 21, 22])
    v = beside("heldout_attacks", a, pool)
    assert v.name == "heldout_attacks"
    assert v.frame[fields.ROW].tolist() == [10, 12, 14, 20, 21, 22]
    assert v.frame.index.tolist() == list(range(6))
    assert v.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert v.scores.tolist() == pytest.approx([1.0, 1.2, 1.4, 2.0, 2.1, 2.2])
    assert v.category.tolist() == ["normal"] * 3 + ["dos"] * 3
    assert v.X[:, 0].tolist() == pytest.approx(v.scores.tolist()) and v.feature_scores.shape == (6, 1)
    # every pool row counts as an outlier, whatever its own label says
    assert beside("p", a, _split("normals", [0, 0], [30, 31])).y.tolist() == [0, 0, 0, 1, 1]


def test_the_difficulty_view_is_the_rows_below_the_level_and_absent_without_a_difficulty():
    test = _split("test", [0, 1, 0, 1], [0, 1, 2, 3], difficulty=[21, 5, 20, 21])
    hard = below_difficulty(test)
    assert hard.name == f"test_difficulty_below_{HARD_DIFFICULTY}" and HARD_DIFFICULTY == 21
    assert hard.frame[fields.ROW].tolist() == [1, 2] and hard.frame.index.tolist() == [0, 1]
    assert hard.y.tolist() == [1, 0] and hard.scores.tolist() == pytest.approx([0.1, 0.2])
    assert subset("s", test, np.array([True, False, False, True])).frame[fields.ROW].tolist() == [0, 3]
    assert below_difficulty(_split("test", [0, 1], [0, 1])) is None


def test_a_views_metrics_count_each_distinct_row_once_in_its_distinct_section():
    frame = _frame([0, 1, 2, 3], ["normal", "smurf", "smurf", "normal"], ["normal", "dos", "dos", "normal"])
    frame["duration"] = [0.0, 1.0, 1.0, 2.0]  # rows 1 and 2 are the same connection
    v = View("test", frame, np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.9, 0.6]))
    m = view_metrics(v, 0.5)
    assert m["rows"] == 4 and m["distinct"]["rows"] == 3 and m["distinct"]["outliers"] == 1
    assert m["confusion"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert set(m["distinct"]) == {*HEADLINE, "fpr", "rows", "outliers", "categories"}
    assert m["recall_by_attack"] == {"smurf": {"recall": 1.0, "rows": 2}}


def _report_views() -> ReportViews:
    test = _split("test", [0, 1, 0, 1, 0, 0], [0, 1, 2, 3, 4, 5])
    batch = _split("threshold_batch", [0, 0, 1], [6, 7, 8])
    return ReportViews(
        test=test,
        heldout_attacks=beside("heldout_attacks", test, _split("attacks", [1, 1], [9, 10])),
        threshold_batch=batch,
        threshold_pool=beside("threshold_pool", batch, _split("threshold_attacks", [1], [11])),
        val=_split("val", [0, 0, 0, 0], [1, 2, 3, 4]),
    )


def test_metrics_json_is_written_with_its_sections_in_order_and_reads_back(tmp_path):
    views = _report_views()
    threshold = {"threshold": 0.25, "method": "percentile"}
    written = metrics_file.write(tmp_path / "metrics.json", views, threshold)
    back = json.loads((tmp_path / "metrics.json").read_text())
    assert list(back) == [
        *HEADLINE,
        "macro_roc_auc",
        "macro_recall",
        "operating_point",
        "test",
        "heldout_attacks",
        "threshold_batch",
        "threshold_pool",
    ]
    assert back == json.loads(json.dumps(written))
    # the test split at 0.25: flagged rows 3, 4, 5 (scores 0.3, 0.4, 0.5) → tp 1, fp 2, fn 1, tn 2
    assert back["test"]["confusion"] == {"tn": 2, "fp": 2, "fn": 1, "tp": 1}
    assert back["heldout_attacks"]["rows"] == 6 and back["heldout_attacks"]["outliers"] == 2
    assert back["threshold_pool"]["rows"] == 3 and set(back["threshold_batch"]) == {*HEADLINE, "fpr"}
    assert back["operating_point"] == {
        "threshold": 0.25,
        "method": "percentile",
        "fpr_test_normals": 0.5,
        "fpr_val_normals": 0.5,  # val scores 0.1 … 0.4
        "recall": {"dos": 1.0},
        "macro_recall": 1.0,
    }
    hard = dataclasses.replace(views, hard=subset("test_difficulty_below_21", views.test, views.test.y == 1))
    assert list(metrics_file.metrics(hard, threshold))[-1] == "test_difficulty_below_21"
    lines = table.log_lines(written)
    assert lines[0].startswith("evaluate: F1 ") and "of 2)" in lines[0]
    assert any(line.split()[:2] == ["dos", "2"] for line in lines)


def test_the_plot_files_are_written_from_the_views_and_read_back(tmp_path):
    views = _report_views()
    plots.write(tmp_path / "plots", views.test, views.heldout_attacks, 0.25)
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        "roc.csv",
        "pr.csv",
        "roc_by_category.csv",
        "confusion.csv",
        "scores.csv",
    }
    confusion = pd.read_csv(tmp_path / "plots" / "confusion.csv")
    assert confusion["actual"].tolist() == ["normal", "outlier", "normal", "outlier", "normal", "normal"]
    assert confusion["predicted"].tolist() == ["normal"] * 3 + ["outlier"] * 3
    scores = pd.read_csv(tmp_path / "plots" / "scores.csv")
    assert scores["test_row"].tolist() == list(range(6)) and scores["row"].tolist() == list(range(6))
    curves = pd.read_csv(tmp_path / "plots" / "roc_by_category.csv")
    assert list(curves.columns) == ["fpr", *fields.ATTACK_CLASSES] and curves["dos"].iloc[-1] == 1.0
    assert curves["probe"].isna().all()  # absent here, present as a column so revisions compare


class _Explaining(_Summing):
    has_feature_scores = True

    def explain(self, df: pd.DataFrame, k: int) -> pd.DataFrame:
        return pd.DataFrame({"feature_1": ["duration"] * len(df), "share_1": [1.0] * len(df)})


def test_the_alerts_file_holds_the_top_flagged_rows_with_their_explanation(tmp_path):
    test = _split("test", [0, 1, 0, 1], [0, 1, 2, 3])
    alerts.write(tmp_path / "alerts.csv", _Explaining(), test, 0.15)
    back = pd.read_csv(tmp_path / "alerts.csv")
    assert back["test_row"].tolist() == [3, 2] and back["row"].tolist() == [3, 2]
    assert back["instance_score"].tolist() == pytest.approx([0.3, 0.2])
    assert back["label"].tolist() == ["smurf", "normal"] and back["feature_1"].tolist() == ["duration"] * 2


class _Plain(_Summing):
    has_feature_scores, has_latent, history = False, False, []


def test_the_figures_are_drawn_from_the_views_and_the_metrics(tmp_path):
    views = _report_views()
    metrics = metrics_file.metrics(views, {"threshold": 0.25, "method": "percentile"})
    figure_set.write(tmp_path / "figures", _Plain(), views.test, views.heldout_attacks, metrics)
    assert {p.name for p in (tmp_path / "figures").glob("*.png")} == {
        "confusion_matrix.png",
        "roc_by_category.png",
        "roc.png",
        "precision_recall.png",
        "instance_scores.png",
        "score_histogram.png",
    }
