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
from kddad.data import fields
from kddad.data.split import ATTACKS, THRESHOLD_ATTACKS
from kddad.detector import Detector, read_threshold
from kddad.evaluation import (
    category_roc,
    class_names,
    detection_metrics,
    first_occurrences,
    pr_points,
    roc_points,
    thin,
)
from kddad.io import atomic_dir, atomic_file, write_json
from kddad.paths import Paths
from kddad.pyfunc import log_detector
from kddad.stages.data import load_split
from kddad.stages.model import load_features, recorded_run, trained_detector
from kddad.tracking import Tracker

log = logging.getLogger(__name__)

HEADLINE = ("f1", "precision", "recall", "roc_auc", "pr_auc")
TOP_ALERTS, TOP_FEATURES = 20, 3
PLOT_ROWS = 5000  # DVC renders plots in the browser: keep its files small
#: False-positive rates the per-category ROC plot file samples (log-spaced: the low end matters)
ROC_GRID = np.unique(np.r_[0.0, np.logspace(-4, 0, 161)])
#: Rows are the same row when these are: the distinct-rows view counts each once
DISTINCT_ON = (*fields.FEATURES, fields.LABEL)
#: NSL-KDD's KDDTest-21: the test rows fewer than all 21 of its learners got right
HARD_DIFFICULTY = 21


def view(y: np.ndarray, scores: np.ndarray, threshold: float, frame: pd.DataFrame) -> dict:
    """Detection metrics with per-category figures, and the same with each distinct row counted once."""
    m = detection_metrics(y, scores, threshold, frame[fields.CATEGORY], frame[fields.LABEL])
    keep = first_occurrences(frame, DISTINCT_ON)
    d = detection_metrics(y[keep], scores[keep], threshold, frame[fields.CATEGORY].to_numpy()[keep])
    m["distinct"] = {k: d[k] for k in (*HEADLINE, "fpr", "rows", "outliers", "categories")}
    return m


def operating_point(threshold: dict, test: dict, held: dict, val_fpr: float) -> dict:
    """The chosen threshold's cost (false-positive rates on normals) beside what it catches, per category."""
    cats = held["categories"]
    return {
        "threshold": threshold["threshold"],
        "method": threshold.get("method"),
        "fpr_test_normals": test["fpr"],
        "fpr_val_normals": val_fpr,
        "recall": {c: v["recall"] for c, v in cats.items() if c not in ("macro", "inliers")},
        "macro_recall": cats.get("macro", {}).get("recall", float("nan")),
    }


def _plots(out: Path, y: np.ndarray, scores: np.ndarray, threshold: float, frame: pd.DataFrame, held: tuple) -> None:
    thin(roc_points(y, scores), PLOT_ROWS).to_csv(out / "roc.csv", index=False)
    y_held, scores_held, category_held = held
    by_category = category_roc(y_held, scores_held, category_held, ROC_GRID)
    # the four attack classes every run, so DVC can compare revisions (an absent one is empty),
    # then any other outlier category (normal traffic under split=dagmm, unknown attack names)
    others = [c for c in by_category.columns if c != "fpr" and c not in fields.ATTACK_CLASSES]
    columns = ["fpr", *fields.ATTACK_CLASSES, *others]
    by_category.reindex(columns=columns).to_csv(out / "roc_by_category.csv", index=False)
    thin(pr_points(y, scores), PLOT_ROWS).to_csv(out / "pr.csv", index=False)
    # every test row: the plot's counts must equal metrics.json's (two short columns, no thinning)
    pd.DataFrame({"actual": class_names(y), "predicted": class_names(scores > threshold)}).to_csv(
        out / "confusion.csv", index=False
    )
    rows = pd.DataFrame(
        {
            "row": frame[fields.ROW],
            "score": scores,
            "class": class_names(y),
            "category": frame[fields.CATEGORY],
            "label": frame[fields.LABEL],
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
    held: tuple,
    metrics: dict,
) -> None:
    classes = class_names(y)
    figures.confusion(m["confusion"], out / "confusion_matrix.png")
    y_held, scores_held, category_held = held
    grid = np.unique(np.r_[0.0, np.logspace(-5, 0, 400)])
    figures.roc_by_category(
        category_roc(y_held, scores_held, category_held, grid),
        metrics["heldout_attacks"]["categories"],
        metrics["operating_point"]["fpr_test_normals"],
        out / "roc_by_category.png",
    )
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
            "row": rows[fields.ROW].to_numpy(),
            "label": rows[fields.LABEL].to_numpy(),
            "category": rows[fields.CATEGORY].to_numpy(),
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
    threshold_info = read_threshold(paths.threshold)
    threshold = threshold_info["threshold"]
    test = load_split("test", paths)
    X, y = load_features("test", paths)
    scores, feat = det.score(X)
    m = view(y, scores, threshold, test)

    # second view: the test normals beside every held-out attack, where rare attack types count
    attacks = load_split(ATTACKS, paths)
    X_att, _ = load_features(ATTACKS, paths)
    att_scores, _ = det.score(X_att)
    normal = y == 0
    held_frame = pd.concat([test[normal], attacks], ignore_index=True)
    held_y, held_scores = np.r_[y[normal], np.ones(len(att_scores), int)], np.r_[scores[normal], att_scores]
    held = view(held_y, held_scores, threshold, held_frame)

    # third: the threshold batch, and its normals beside every attack of the threshold pool (not test)
    thr_frame = load_split("threshold", paths)
    X_thr, y_thr = load_features("threshold", paths)
    thr_scores, _ = det.score(X_thr)
    on_thr = detection_metrics(y_thr, thr_scores, threshold)
    pool = load_split(THRESHOLD_ATTACKS, paths)
    pool_scores, _ = det.score(load_features(THRESHOLD_ATTACKS, paths)[0])
    thr_normal = y_thr == 0
    pool_view = view(
        np.r_[y_thr[thr_normal], np.ones(len(pool), int)],
        np.r_[thr_scores[thr_normal], pool_scores],
        threshold,
        pd.concat([thr_frame[thr_normal], pool], ignore_index=True),
    )
    val_scores, _ = det.score(load_features("val", paths)[0])

    macro = held["categories"].get("macro", {})
    metrics = {
        **{k: m[k] for k in HEADLINE},
        "macro_roc_auc": macro.get("roc_auc", float("nan")),
        "macro_recall": macro.get("recall", float("nan")),
        "operating_point": operating_point(threshold_info, m, held, float((val_scores > threshold).mean())),
        "test": {k: v for k, v in m.items() if k not in HEADLINE},
        "heldout_attacks": held,
        "threshold_batch": {k: on_thr[k] for k in (*HEADLINE, "fpr")},
        "threshold_pool": {k: pool_view[k] for k in (*HEADLINE, "rows", "outliers", "categories", "distinct")},
    }
    if fields.DIFFICULTY in test:
        hard = (test[fields.DIFFICULTY] < HARD_DIFFICULTY).to_numpy()
        metrics[f"test_difficulty_below_{HARD_DIFFICULTY}"] = view(
            y[hard], scores[hard], threshold, test[hard].reset_index(drop=True)
        )
    write_json(paths.reports / "metrics.json", metrics)
    alerts = top_alerts(det, test, scores, threshold)
    with atomic_file(paths.reports / "alerts.csv") as tmp:
        alerts.to_csv(tmp, index=False)
    held_curves = (held_y, held_scores, held_frame[fields.CATEGORY].to_numpy())
    with atomic_dir(paths.reports / "plots") as tmp:
        _plots(tmp, y, scores, threshold, test, held_curves)
    with atomic_dir(paths.reports / "figures") as tmp:
        _figures(tmp, det, X, y, scores, feat, m, threshold, held_curves, metrics)

    with tracker.stage_run(cfg, resume=recorded_run(paths.threshold), logs="f1") as run_id:
        _track(tracker, run_id, metrics, cfg, paths)
        if run_id:
            log_detector(tracker, run_id, paths.detector, paths.threshold, test.head(5), cfg.tracking.register_as)
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
    for line in operating_lines(metrics):
        log.info(line)
    return metrics


def operating_lines(metrics: dict) -> list[str]:
    """The report's table: per category, what the threshold catches and what fixed FPRs would."""
    op, cats = metrics["operating_point"], metrics["heldout_attacks"]["categories"]
    fprs = next((list(v["recall_at_fpr"]) for v in cats.values() if "recall_at_fpr" in v), [])
    lines = [
        f"operating point: threshold {op['threshold']:.6g} ({op['method'] or 'threshold.json'}) flags "
        f"{100 * op['fpr_test_normals']:.2f}% of test normals ({100 * op['fpr_val_normals']:.2f}% of val normals)",
        f"  {'category':<9}{'rows':>9}{'ROC-AUC':>9}{'recall':>8}"
        + "".join(f"{'@FPR ' + format(float(f) * 100, 'g') + '%':>11}" for f in fprs)
        + "   (held-out attacks vs test normals)",
    ]
    for name, v in cats.items():
        if name == "inliers":
            continue
        rows = str(v.get("rows", v.get("categories", ""))) if name != "macro" else f"{v['categories']} cat."
        at = v.get("recall_at_fpr", {})
        lines.append(
            f"  {name:<9}{rows:>9}{v.get('roc_auc', float('nan')):>9.4f}{v['recall']:>8.3f}"
            + "".join(f"{at.get(f, float('nan')):>11.3f}" for f in fprs)
        )
    return lines


def _track(tracker: Tracker, run_id: str | None, metrics: dict, cfg: Config, paths: Paths) -> None:
    """Metrics, figures, metrics.json, threshold.json and the config into the run."""
    if not run_id:
        return
    tracker.log_metrics(run_id, metrics)
    tracker.log_artifact(run_id, paths.reports / "metrics.json")
    tracker.log_artifact(run_id, paths.reports / "alerts.csv")
    tracker.log_artifact(run_id, paths.threshold)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False), encoding="utf-8")
        tracker.log_artifact(run_id, config_file)
    for png in sorted((paths.reports / "figures").glob("*.png")):
        tracker.log_artifact(run_id, png, "figures")
