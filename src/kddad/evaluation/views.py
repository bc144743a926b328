"""Named views: rows of a split with their labels and scores, and the metrics each view reports.

A view is what one section of metrics.json (and the writers beside it) is computed on: a split
scored by the detector, the normal rows of one view beside every row of an attack pool (where rare
attack categories count), or a subset of a view's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from kddad.data import fields
from kddad.data.split import row_keys
from kddad.evaluation.metrics import HEADLINE, detection_metrics, first_occurrences

#: Rows are the same row when these are: the distinct-rows view counts each once
DISTINCT_ON = (*fields.FEATURES, fields.LABEL)
#: A view frame's column holding a 64-bit key of each row's DISTINCT_ON values (equal rows, equal keys)
DISTINCT_KEY = "distinct_key"
#: What a view reads of a row, besides its features: a view of many rows keeps only these
ROW_COLUMNS = (fields.ROW, fields.LABEL, fields.CATEGORY, fields.IS_OUTLIER, fields.DIFFICULTY, DISTINCT_KEY)
#: NSL-KDD's KDDTest-21: the test rows fewer than all 21 of its learners got right
HARD_DIFFICULTY = 21


class Scorer(Protocol):
    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


@dataclass(frozen=True, eq=False)
class View:
    """Rows (``frame``: row ids, labels, categories, difficulty where present), is-outlier ``y`` and scores.

    ``name`` is the view's section in metrics.json.

    ``feature_scores`` (per row and feature) where the detector has them; ``X`` (the encoded rows)
    only where a writer needs it (figures of the latent space).
    """

    name: str
    frame: pd.DataFrame
    y: np.ndarray
    scores: np.ndarray
    feature_scores: np.ndarray | None = None
    X: np.ndarray | None = None

    @property
    def category(self) -> np.ndarray:
        return self.frame[fields.CATEGORY].to_numpy()


def with_distinct_key(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its :data:`DISTINCT_KEY` column (computed from its features where it has none)."""
    if DISTINCT_KEY in frame:
        return frame
    return frame.assign(**{DISTINCT_KEY: row_keys(frame, DISTINCT_ON)})


def scored(
    name: str, frame: pd.DataFrame, X: np.ndarray, y: np.ndarray, det: Scorer, keep_arrays: bool = False
) -> View:
    """One split's rows scored by ``det``; with ``keep_arrays``, also its X and feature scores (large)."""
    scores, feature_scores = det.score(X)
    return View(
        name, with_distinct_key(frame), y, scores, feature_scores if keep_arrays else None, X if keep_arrays else None
    )


def _joined(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return np.concatenate([a, b]) if a is not None and b is not None else None


def beside(name: str, normals_of: View, pool: View) -> View:
    """The normal rows of ``normals_of`` followed by every row of ``pool``, each of those an outlier."""
    normal = normals_of.y == 0
    shared = [c for c in normals_of.frame.columns if c in pool.frame.columns]  # the features where both have them
    return View(
        name,
        pd.concat([normals_of.frame.loc[normal, shared], pool.frame[shared]], ignore_index=True),
        np.r_[normals_of.y[normal], np.ones(len(pool.scores), int)],
        np.r_[normals_of.scores[normal], pool.scores],
        _joined(None if normals_of.feature_scores is None else normals_of.feature_scores[normal], pool.feature_scores),
        _joined(None if normals_of.X is None else normals_of.X[normal], pool.X),
    )


def subset(name: str, view: View, keep: np.ndarray) -> View:
    """The rows of ``view`` where ``keep`` (a boolean mask) holds, renumbered from 0."""
    return View(
        name,
        view.frame[keep].reset_index(drop=True),
        view.y[keep],
        view.scores[keep],
        None if view.feature_scores is None else view.feature_scores[keep],
        None if view.X is None else view.X[keep],
    )


def below_difficulty(view: View, level: int = HARD_DIFFICULTY) -> View | None:
    """The rows of difficulty below ``level`` (NSL-KDD's KDDTest-21 for 21); None without a difficulty column."""
    if fields.DIFFICULTY not in view.frame:
        return None
    hard = (view.frame[fields.DIFFICULTY] < level).to_numpy()
    return subset(f"{view.name}_difficulty_below_{level}", view, hard)


def view_metrics(view: View, threshold: float) -> dict[str, Any]:
    """Detection metrics with per-category figures, and the same with each distinct row counted once."""
    m = detection_metrics(view.y, view.scores, threshold, view.frame[fields.CATEGORY], view.frame[fields.LABEL])
    keep = first_occurrences(with_distinct_key(view.frame), [DISTINCT_KEY])
    d = detection_metrics(view.y[keep], view.scores[keep], threshold, view.category[keep])
    m["distinct"] = {k: d[k] for k in (*HEADLINE, "fpr", "rows", "outliers", "categories")}
    return m
