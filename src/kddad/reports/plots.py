"""The DVC plot files (plots/): ROC, PR, per-category ROC, confusion and per-row scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kddad.data import fields
from kddad.evaluation.metrics import category_roc, class_names, pr_points, roc_points, thin
from kddad.evaluation.views import View
from kddad.io import atomic_dir

PLOT_ROWS = 5000  # DVC renders plots in the browser: keep its files small
#: False-positive rates the per-category ROC plot file samples (log-spaced: the low end matters)
ROC_GRID = np.unique(np.r_[0.0, np.logspace(-4, 0, 161)])


def by_category(view: View) -> pd.DataFrame:
    """Per-category ROC on ``ROC_GRID``: the four attack classes every run, so DVC can compare revisions
    (an absent one is empty), then any other outlier category (normal traffic under split=dagmm,
    unknown attack names)."""
    curves = category_roc(view.y, view.scores, view.category, ROC_GRID)
    others = [c for c in curves.columns if c != "fpr" and c not in fields.ATTACK_CLASSES]
    return curves.reindex(columns=["fpr", *fields.ATTACK_CLASSES, *others])


def write(folder: Path, test: View, heldout: View, threshold: float) -> None:
    """Curves and scores of ``test``; the per-category ROC of ``heldout`` (where rare categories count)."""
    with atomic_dir(folder) as out:
        thin(roc_points(test.y, test.scores), PLOT_ROWS).to_csv(out / "roc.csv", index=False)
        by_category(heldout).to_csv(out / "roc_by_category.csv", index=False)
        thin(pr_points(test.y, test.scores), PLOT_ROWS).to_csv(out / "pr.csv", index=False)
        # every row: the plot's counts must equal metrics.json's (two short columns, no thinning)
        confusion = {"actual": class_names(test.y), "predicted": class_names(test.scores > threshold)}
        pd.DataFrame(confusion).to_csv(out / "confusion.csv", index=False)
        rows = pd.DataFrame(
            {
                "row": test.frame[fields.ROW],
                "score": test.scores,
                "class": class_names(test.y),
                "category": test.frame[fields.CATEGORY],
                "label": test.frame[fields.LABEL],
            }
        )
        numbered = rows.reset_index().rename(columns={"index": "test_row"})
        thin(numbered, PLOT_ROWS).to_csv(out / "scores.csv", index=False)
