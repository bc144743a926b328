"""Detection metrics at a threshold, and the curves DVC plots and the figures draw."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def detection_metrics(
    y: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    category: np.ndarray | None = None,
    label: np.ndarray | None = None,
) -> dict[str, Any]:
    """F1, precision, recall, accuracy, ROC-AUC, PR-AUC, FPR and confusion counts at ``threshold``.

    With ``category``/``label`` (per row), also the recall of each category and type of the
    outlier rows: which attacks slip through (under ``split=dagmm``, the outliers are normal traffic).
    """
    y = np.asarray(y).astype(int)
    pred = (np.asarray(scores) > threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, pred, labels=[0, 1]).ravel())
    both = len(np.unique(y)) == 2
    out: dict[str, Any] = {
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "roc_auc": float(skm.roc_auc_score(y, scores)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, scores)) if both else float("nan"),
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "rows": int(len(y)),
        "outliers": int(y.sum()),
        "threshold": float(threshold),
    }
    for key, names in (("recall_by_category", category), ("recall_by_attack", label)):
        if names is not None:
            names = (names if isinstance(names, pd.Series) else pd.Series(np.asarray(names))).reset_index(drop=True)
            attacks = y == 1
            groups = pd.DataFrame({"name": names[attacks].reset_index(drop=True), "flagged": pred[attacks]})
            stats = groups.groupby("name", sort=True)["flagged"].agg(["mean", "size"])
            out[key] = {str(n): {"recall": float(m), "rows": int(k)} for n, m, k in stats.itertuples()}
    return out


def roc_points(y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    fpr, tpr, thr = skm.roc_curve(y, scores)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


def pr_points(y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    precision, recall, thr = skm.precision_recall_curve(y, scores)
    return pd.DataFrame({"recall": recall, "precision": precision, "threshold": np.r_[thr, np.nan]})


def thin(df: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows, for plot files: curves keep their order, samples are random."""
    if len(df) <= max_rows:
        return df
    return df.sample(max_rows, random_state=seed).sort_index()


def class_names(is_outlier: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(is_outlier) == 1, "outlier", "normal")
