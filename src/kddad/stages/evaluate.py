"""The evaluate stage: metrics, DVC plot files, figures and the MLflow record of a run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from kddad import figures
from kddad.config import Config
from kddad.data import schema
from kddad.data.split import ATTACKS
from kddad.detector import Detector, read_threshold
from kddad.evaluation import class_names, detection_metrics, pr_points, roc_points, thin
from kddad.io import atomic_dir, atomic_file, write_json
from kddad.paths import Paths
from kddad.pyfunc import log_detector
from kddad.stages.data import load_split
from kddad.stages.model import load_features, run_id, trained_detector
from kddad.tracking import Tracker

log = logging.getLogger(__name__)

HEADLINE = ("f1", "precision", "recall", "roc_auc", "pr_auc")
TOP_ALERTS, TOP_FEATURES = 20, 3
PLOT_ROWS = 5000  # DVC renders plots in the browser: keep its files small


def _plots(out: Path, y: np.ndarray, scores: np.ndarray, threshold: float, frame: pd.DataFrame) -> None:
    thin(roc_points(y, scores), PLOT_ROWS).to_csv(out / "roc.csv", index=False)
    thin(pr_points(y, scores), PLOT_ROWS).to_csv(out / "pr.csv", index=False)
    # every test row: the plot's counts must equal metrics.json's (two short columns, no thinning)
    pd.DataFrame({"actual": class_names(y), "predicted": class_names(scores > threshold)}).to_csv(
        out / "confusion.csv", index=False
    )
    rows = pd.DataFrame(
        {
            "row": frame[schema.ROW],
            "score": scores,
            "class": class_names(y),
            "category": frame[schema.CATEGORY],
            "label": frame[schema.LABEL],
        }
    )
    thin(rows.reset_index().rename(columns={"index": "test_row"}), PLOT_ROWS).to_csv(out / "scores.csv", index=False)


def _figures(
    out: Path,
    det: Detector,
    X: np.ndarray,
    y: np.ndarray,
    scores: np.ndarray,
    feat: np.ndarray,
    m: dict,
    threshold: float,
) -> None:
    classes = class_names(y)
    figures.confusion(m["confusion"], out / "confusion_matrix.png")
    roc = roc_points(y, scores)
    figures.roc(roc["fpr"].to_numpy(), roc["tpr"].to_numpy(), m["roc_auc"], out / "roc.png")
    pr = pr_points(y, scores)
    figures.precision_recall(
        pr["recall"].to_numpy(), pr["precision"].to_numpy(), m["pr_auc"], y.mean(), out / "precision_recall.png"
    )
    figures.instance_scores(scores, classes, threshold, out / "instance_scores.png")
    if det.has_feature_scores:
        top = np.argsort(scores)[::-1][:50]
        names = det.encoder.feature_names if det.encoder is not None else [f"f{i}" for i in range(X.shape[1])]
        figures.top_features(feat[top], names, out / "top_outlier_features.png", top_rows=len(top))
    if det.has_latent:
        keep = np.random.default_rng(0).permutation(len(X))[:PLOT_ROWS]
        z = det.latent(X[keep])
        projected = z.shape[1] > 2
        if projected:  # project onto the two principal axes of the latent codes
            centred = z - z.mean(0)
            z = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        figures.latent_space(z, classes[keep], out / "latent_space.png", pca=projected)
    if det.history:
        figures.loss_curves(det.history, out / "training_curve.png")


def top_alerts(det: Detector, test: pd.DataFrame, scores: np.ndarray, threshold: float) -> pd.DataFrame:
    """The highest-scoring flagged test rows, each with the raw features that drove its score."""
    flagged = np.flatnonzero(scores > threshold)
    top = flagged[np.argsort(scores[flagged], kind="stable")[::-1][:TOP_ALERTS]]
    rows = test.iloc[top]
    out = pd.DataFrame(
        {
            "test_row": top,
            "row": rows[schema.ROW].to_numpy(),
            "label": rows[schema.LABEL].to_numpy(),
            "category": rows[schema.CATEGORY].to_numpy(),
            "instance_score": scores[top],
        }
    )
    if det.has_feature_scores and len(top):
        out = pd.concat([out, det.explain(rows, TOP_FEATURES).reset_index(drop=True)], axis=1)
    return out


def evaluate(cfg: Config, paths: Paths = Paths()) -> dict:
    """Score the test set at the threshold; also all held-out attacks; write metrics, plots, figures."""
    tracker = Tracker(cfg.tracking).connect()
    det = trained_detector(cfg, paths)
    threshold = read_threshold(paths.threshold)["threshold"]
    test = load_split("test", paths)
    X, y = load_features("test", paths)
    scores, feat = det.score(X)
    m = detection_metrics(y, scores, threshold, test[schema.CATEGORY], test[schema.LABEL])

    # second view: the test normals beside every held-out attack, where rare attack types count
    attacks = load_split(ATTACKS, paths)
    X_att, _ = load_features(ATTACKS, paths)
    att_scores, _ = det.score(X_att)
    normal = y == 0
    held = detection_metrics(
        np.r_[y[normal], np.ones(len(att_scores), int)],
        np.r_[scores[normal], att_scores],
        threshold,
        np.r_[test[schema.CATEGORY][normal], attacks[schema.CATEGORY]],
        np.r_[test[schema.LABEL][normal], attacks[schema.LABEL]],
    )
    X_thr, y_thr = load_features("threshold", paths)
    thr_scores, _ = det.score(X_thr)
    on_thr = detection_metrics(y_thr, thr_scores, threshold)

    metrics = {
        **{k: m[k] for k in HEADLINE},
        "test": {k: v for k, v in m.items() if k not in HEADLINE},
        "heldout_attacks": held,
        "threshold_batch": {k: on_thr[k] for k in (*HEADLINE, "fpr")},
    }
    write_json(paths.reports / "metrics.json", metrics)
    alerts = top_alerts(det, test, scores, threshold)
    with atomic_file(paths.reports / "alerts.csv") as tmp:
        alerts.to_csv(tmp, index=False)
    with atomic_dir(paths.reports / "plots") as tmp:
        _plots(tmp, y, scores, threshold, test)
    with atomic_dir(paths.reports / "figures") as tmp:
        _figures(tmp, det, X, y, scores, feat, m, threshold)

    with tracker.run(cfg, resume=run_id(paths.threshold), logs="f1") as run:
        _track(tracker, run, metrics, cfg, paths)
        if run:
            log_detector(tracker.uri, run, paths.detector, paths.threshold, test.head(5), cfg.tracking.register_as)
    log.info(
        "evaluate: F1 %.4f, precision %.4f, recall %.4f, ROC-AUC %.5f, PR-AUC %.5f on %d test rows "
        "(held-out outliers: recall %.4f of %d)",
        m["f1"],
        m["precision"],
        m["recall"],
        m["roc_auc"],
        m["pr_auc"],
        m["rows"],
        held["recall"],
        held["outliers"],
    )
    return metrics


def _track(tracker: Tracker, run: str | None, metrics: dict, cfg: Config, paths: Paths) -> None:
    """Metrics, figures, metrics.json, threshold.json and the config into the run."""
    if not run:
        return
    tracker.log_metrics(run, metrics)
    tracker.log_artifact(run, paths.reports / "metrics.json")
    tracker.log_artifact(run, paths.reports / "alerts.csv")
    tracker.log_artifact(run, paths.threshold)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False), encoding="utf-8")
        tracker.log_artifact(run, config_file)
    for png in sorted((paths.reports / "figures").glob("*.png")):
        tracker.log_artifact(run, png, "figures")
