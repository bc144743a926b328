"""The PNG figures (figures/) of an evaluation, drawn with :mod:`kddad.figures`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kddad import figures
from kddad.data.fields import ATTACK_CLASSES
from kddad.evaluation.metrics import category_roc, class_names, pr_points, roc_points
from kddad.evaluation.views import View
from kddad.io import atomic_dir

if TYPE_CHECKING:
    from kddad.detector import Detector

#: False-positive rates the per-category ROC figure draws (finer and lower than the plot file's)
ROC_GRID = np.unique(np.r_[0.0, np.logspace(-5, 0, 400)])
#: Rows drawn in the latent-space scatter: enough to see the classes, few enough to stay legible
LATENT_ROWS = 5000
#: Highest-scoring rows whose feature scores the top-features figure shows
TOP_ROWS = 50


def write(folder: Path, det: Detector, test: View, heldout: View, metrics: dict[str, Any]) -> None:
    """Figures of ``test`` (which keeps its X and feature scores), the per-category ROC of ``heldout``,
    and, where the detector has them, its feature scores, latent codes and training curve."""
    with atomic_dir(folder) as out:
        _curves(out, test, heldout, metrics)
        if det.has_feature_scores:
            top = np.argsort(test.scores)[::-1][:TOP_ROWS]
            n = test.X.shape[1]
            names = det.encoder.feature_names if det.encoder is not None else [f"f{i}" for i in range(n)]
            figures.top_features(test.feature_scores[top], names, out / "top_outlier_features.png", top_rows=len(top))
        if det.has_latent:
            _latent(out, det, test)
        if det.history:
            figures.loss_curves(det.history, out / "training_curve.png")


def _curves(out: Path, test: View, heldout: View, metrics: dict[str, Any]) -> None:
    """Confusion matrix, ROC (overall and per category), precision-recall, the scores per test row and
    the histogram of the held-out view's scores per category."""
    threshold = metrics["operating_point"]["threshold"]
    figures.confusion(metrics["test"]["confusion"], out / "confusion_matrix.png")
    figures.roc_by_category(
        category_roc(heldout.y, heldout.scores, heldout.category, ROC_GRID),
        metrics[heldout.name]["categories"],
        metrics["operating_point"]["fpr_test_normals"],
        out / "roc_by_category.png",
    )
    roc = roc_points(test.y, test.scores)
    figures.roc(roc["fpr"].to_numpy(), roc["tpr"].to_numpy(), metrics["roc_auc"], out / "roc.png")
    pr = pr_points(test.y, test.scores)
    recall, precision = pr["recall"].to_numpy(), pr["precision"].to_numpy()
    figures.precision_recall(recall, precision, metrics["pr_auc"], test.y.mean(), out / "precision_recall.png")
    figures.instance_scores(test.scores, class_names(test.y), threshold, out / "instance_scores.png")
    groups = {"normal": heldout.scores[heldout.y == 0]}
    groups |= {c: heldout.scores[(heldout.y == 1) & (heldout.category == c)] for c in ATTACK_CLASSES}
    figures.score_histogram(groups, threshold, out / "score_histogram.png")


def _latent(out: Path, det: Detector, test: View) -> None:
    """A sample of the test rows' latent codes, projected onto their two principal axes when wider."""
    keep = np.random.default_rng(0).permutation(len(test.X))[:LATENT_ROWS]
    z = det.latent(test.X[keep])
    projected = z.shape[1] > 2
    if projected:
        centred = z - z.mean(0)
        z = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    figures.latent_space(z, class_names(test.y)[keep], out / "latent_space.png", pca=projected)
