"""The model stages: train → threshold. Config in, files out."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from kddad.config import Config
from kddad.detector import Detector
from kddad.errors import DataError
from kddad.features.encoder import FeatureEncoder
from kddad.io import atomic_file, sha256sum, write_json
from kddad.paths import Paths, feature_files
from kddad.tracking import Tracker

log = logging.getLogger(__name__)


def feature_paths(name: str, paths: Paths = Paths()) -> tuple[Path, Path]:
    """The encode stage's files of split ``name`` (X, is_outlier), which must be there."""
    X_path, y_path = feature_files(paths.features, name)
    if not X_path.is_file():
        raise DataError(f"{X_path}: not found; run the encode stage first (dvc repro encode)")
    return X_path, y_path


def load_features(name: str, paths: Paths = Paths()) -> tuple[np.ndarray, np.ndarray]:
    """(X, is_outlier) of one split as written by the encode stage."""
    X_path, y_path = feature_paths(name, paths)
    return np.load(X_path), np.load(y_path)


def write_curve(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "train_loss", "val_loss"])
        writer.writeheader()
        writer.writerows(history)


def recorded_run(path: Path) -> str | None:
    """The MLflow run id an earlier stage recorded in a JSON file (None if none)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("mlflow_run_id")
    except (OSError, ValueError):
        return None


def training_data(cfg: Config, paths: Paths, rows: int) -> dict:
    """Where the training rows came from: the raw file (name, sha256, source) and the split."""
    raw = paths.raw / cfg.dataset.raw_name
    return {
        "name": cfg.dataset.name,
        "file": cfg.dataset.raw_name,
        "sha256": sha256sum(raw) if raw.is_file() else cfg.dataset.sha256,
        "source": cfg.dataset.path or (cfg.dataset.urls[0] if cfg.dataset.urls else None),
        "split": cfg.split.protocol,
        "split_seed": cfg.split.seed,
        "rows": rows,
    }


def train(
    cfg: Config,
    paths: Paths = Paths(),
    callbacks: list | None = None,
    parent_run: str | None = None,
    run_tags: dict[str, str] | None = None,
) -> Detector:
    """Fit the detector on the normal training split; early stopping on the validation split.

    Opens the pipeline execution's MLflow run (per-epoch losses go there through Lightning's
    MLFlowLogger) and records its id in models/mlflow_run.json for the later stages. In a sweep
    the run is nested under ``parent_run`` and carries ``run_tags``.
    """
    tracker = Tracker(cfg.tracking).connect()  # an unreachable store fails now, not after training
    X, y = load_features("train", paths)
    X_val, y_val = load_features("val", paths)
    if y.any() or y_val.any():
        raise DataError(f"{paths.features}: train/val hold {int(y.sum())}/{int(y_val.sum())} outliers; expected none")
    det = Detector(
        cfg.model, cfg.score, cfg.trainer, cfg.early_stopping, FeatureEncoder.load(paths.encoder), seed=cfg.seed
    )
    det.data = training_data(cfg, paths, len(X))
    with tracker.stage_run(cfg, parent=parent_run, tags=run_tags) as run_id:
        tracker.log_dataset(run_id, det.data, context="training", file_rows=cfg.dataset.rows)
        det.fit(X, X_val, logger=tracker.lightning_logger(run_id), callbacks=callbacks)
        det.save(paths.detector)
        write_curve(paths.train_curve, det.history)
        write_json(paths.run_record, {"mlflow_run_id": run_id, "tracking_uri": tracker.uri if run_id else None})
    last = det.history[-1] if det.history else {}
    log.info(
        "train: %s + %s on %d rows × %d features, %d epochs, last val_loss %.4g",
        cfg.model.name,
        cfg.score.name if det.has_feature_scores else "its own score",
        *X.shape,
        len(det.history),
        last.get("val_loss", float("nan")),
    )
    return det


def trained_detector(cfg: Config, paths: Paths) -> Detector:
    """The train stage's detector with ``cfg``'s scoring-only settings, on the device training used
    (``trainer.accelerator``); refuses a score-type mismatch."""
    det = Detector.load(paths.detector, device=cfg.trainer.scoring_device)  # where training ran
    if det.score_cfg.name != cfg.score.name:
        raise DataError(
            f"{paths.detector}: trained for score {det.score_cfg.name!r}, params ask for "
            f"{cfg.score.name!r}; re-run the train stage"
        )
    return det.set_score(**cfg.score.scoring_part())


def threshold(cfg: Config, paths: Paths = Paths()) -> dict:
    """Set the threshold: a percentile of the labelled threshold batch, the cut with its best F1, or a
    target FPR on val normals."""
    tracker = Tracker(cfg.tracking).connect()
    det = trained_detector(cfg, paths)
    t = cfg.threshold
    split = "val" if t.method == "fpr" else "threshold"
    X, y = load_features(split, paths)
    scores, _ = det.score(X)
    if t.method == "percentile":
        perc = t.perc_outlier if t.perc_outlier is not None else cfg.split.threshold.perc_outlier
        value = det.infer_threshold(X, perc, scores=scores)
    elif t.method == "f1":
        value = det.infer_threshold_f1(X, y, scores=scores)
    else:
        value = det.infer_threshold_fpr(X, t.fpr, scores=scores)
    flagged = scores > value
    info = {
        **det.threshold_info,
        "threshold": value,
        "on": feature_files(paths.features, split)[0].relative_to(paths.data_root).as_posix(),
        "outliers_in_batch": int(y.sum()),
        "flagged": int(flagged.sum()),
        "flagged_outliers": int((flagged & (y == 1)).sum()),
        "score": det.score_cfg.model_dump(),
    }
    with tracker.stage_run(cfg, resume=recorded_run(paths.run_record), logs="threshold") as run_id:
        info["mlflow_run_id"] = run_id
        write_json(paths.threshold, info)
        tracker.log_metrics(run_id, {"threshold": value})
        tracker.log_artifact(run_id, paths.threshold)
    log.info("threshold: %.6g (%s on %s, %d of %d rows flagged)", value, t.method, split, info["flagged"], len(X))
    return info
