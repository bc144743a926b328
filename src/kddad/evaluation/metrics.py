"""Detection metrics at a threshold, per attack category too, and the curves DVC plots and figures draw.

Per category, each attack category is scored against the same normal rows: its ROC-AUC, PR-AUC,
recall at the operating threshold and recall at fixed false-positive rates. The macro average
weighs every category present equally, so DoS's hundreds of thousands of rows cannot carry it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from kddad.data import fields

#: The metrics a view is summed up by: at the top of metrics.json, and for each distinct-rows view.
HEADLINE = ("f1", "precision", "recall", "roc_auc", "pr_auc")


def ranking(normal: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(ROC-AUC, average precision) of ``positive`` scores against ``normal`` ones (sorted ascending).

    The values scikit-learn's ``roc_auc_score`` and ``average_precision_score`` give, from one
    search of each positive score among the normal ones rather than a sort of every pair of a
    category and the normals: the AUC is the chance a positive outscores a normal (ties count
    half), the AP the precision at each distinct positive score weighed by the recall it adds.
    """
    n_neg, n_pos = len(normal), len(positive)
    below = np.searchsorted(normal, positive, side="left").sum(dtype=np.int64)
    not_above = np.searchsorted(normal, positive, side="right").sum(dtype=np.int64)
    auc = float((below + not_above) / 2 / (n_neg * n_pos))
    cuts, counts = np.unique(positive, return_counts=True)  # ascending; recall grows from the top down
    tp = np.cumsum(counts[::-1])
    fp = n_neg - np.searchsorted(normal, cuts[::-1], side="left")
    ap = float(np.sum(counts[::-1] / n_pos * (tp / (tp + fp))))
    return auc, ap


def detection_metrics(
    y: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    category: np.ndarray | None = None,
    label: np.ndarray | None = None,
) -> dict[str, Any]:
    """F1, precision, recall, accuracy, ROC-AUC, PR-AUC, FPR and confusion counts at ``threshold``.

    With ``category`` (per row), also :func:`category_metrics` under ``categories``; with
    ``label``, the recall of each attack type: which attacks slip through (under ``split=dagmm``
    the outliers are normal traffic).
    """
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    pred = scores > threshold
    tp, fp = int(np.count_nonzero(pred & y)), int(np.count_nonzero(pred & ~y))
    fn, tn = int(np.count_nonzero(y)) - tp, int(np.count_nonzero(~y)) - fp
    roc_auc = pr_auc = float("nan")
    if tp + fn and fp + tn:  # both classes present
        roc_auc, pr_auc = ranking(np.sort(scores[~y]), scores[y])
    out: dict[str, Any] = {
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "accuracy": (tp + tn) / len(y) if len(y) else 0.0,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "rows": int(len(y)),
        "outliers": tp + fn,
        "threshold": float(threshold),
    }
    if category is not None:
        out["categories"] = category_metrics(y, scores, threshold, category)
    if label is not None:
        groups = pd.DataFrame({"name": _rows(label, y), "flagged": pred[y].astype(int)})
        stats = groups.groupby("name", observed=True)["flagged"].agg(["mean", "size"])
        by_name = {str(n): {"recall": float(m), "rows": int(k)} for n, m, k in stats.itertuples()}
        out["recall_by_attack"] = dict(sorted(by_name.items()))
    return out


def _rows(values: np.ndarray | pd.Series, keep: np.ndarray) -> np.ndarray | pd.Series:
    """The ``keep`` rows of a column, a categorical Series kept categorical (no text per row)."""
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)[keep].reset_index(drop=True)
    return np.asarray(values)[keep]


#: The fixed false-positive rates at which each category's recall is reported.
FPR_TARGETS = (0.001, 0.01, 0.05)
_ORDER = {c: i for i, c in enumerate(fields.CATEGORIES)}


def _ordered(names: set[str]) -> list[str]:
    """Categories in the schema's order (normal, dos, probe, r2l, u2r, unknown), others after by name."""
    return sorted(names, key=lambda c: (_ORDER.get(c, len(_ORDER)), c))


def recall_at_fpr(normal: np.ndarray, outlier: np.ndarray, fpr: float) -> float:
    """Share of ``outlier`` scores above the lowest threshold that flags at most ``fpr`` of ``normal``."""
    n = len(normal)
    allowed = min(int(fpr * n + 1e-9), n - 1)  # normal rows that may score above the cut
    cut = np.partition(normal, n - 1 - allowed)[n - 1 - allowed]  # the (allowed + 1)-th highest
    return float((outlier > cut).mean())


def category_metrics(
    y: np.ndarray, scores: np.ndarray, threshold: float, category: np.ndarray | pd.Series
) -> dict[str, Any]:
    """Each outlier category against all the normal rows, and their macro average.

    Per category: ``rows``, ``roc_auc``, ``pr_auc``, ``recall`` at ``threshold`` and
    ``recall_at_fpr`` (keys "0.001", "0.01", "0.05"). A category of one row is reported with
    its count like any other. ``macro`` is the unweighted mean over the categories present;
    ``inliers`` holds the inlier (normal) rows' count and the false-positive rate at ``threshold``.
    """
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    codes, values = pd.factorize(_rows(category, y))  # a few names over many rows: compare codes
    normal = np.sort(scores[~y])
    attacks = scores[y]
    names = _ordered({str(v) for v in values})
    index = {str(v): i for i, v in enumerate(values)}
    out: dict[str, Any] = {}
    for name in names:
        s = attacks[codes == index[name]]
        entry: dict[str, Any] = {"rows": int(len(s)), "recall": float((s > threshold).mean())}
        if len(normal):
            entry["roc_auc"], entry["pr_auc"] = ranking(normal, s)
            entry["recall_at_fpr"] = {f"{f:g}": recall_at_fpr(normal, s, f) for f in FPR_TARGETS}
        out[name] = entry
    if names:
        present = [out[n] for n in names]
        macro: dict[str, Any] = {"categories": len(names)}
        for key in ("roc_auc", "pr_auc", "recall"):
            if key in present[0]:
                macro[key] = float(np.mean([e[key] for e in present]))
        if "recall_at_fpr" in present[0]:
            macro["recall_at_fpr"] = {
                f: float(np.mean([e["recall_at_fpr"][f] for e in present])) for f in present[0]["recall_at_fpr"]
            }
        out["macro"] = macro
    out["inliers"] = {"rows": int(len(normal)), "fpr": float((normal > threshold).mean()) if len(normal) else 0.0}
    return out


def first_occurrences(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """True for the first row of each distinct value of ``columns``: the distinct-rows view."""
    return ~frame.duplicated(subset=list(columns), keep="first").to_numpy()


def category_roc(y: np.ndarray, scores: np.ndarray, category: np.ndarray | pd.Series, grid: np.ndarray) -> pd.DataFrame:
    """Each outlier category's best true-positive rate at false-positive rates ≤ ``grid`` (vs all normals)."""
    y = np.asarray(y).astype(bool)
    category = np.asarray(category).astype(str)
    out = {"fpr": grid}
    for name in _ordered(set(category[y])):
        keep = ~y | (category == name)
        fpr, tpr, _ = skm.roc_curve(y[keep], scores[keep], drop_intermediate=False)  # keep every step
        out[name] = tpr[np.searchsorted(fpr, grid, side="right") - 1]  # tpr rises with fpr
    return pd.DataFrame(out)


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
