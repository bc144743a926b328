"""The evaluate stage: score the views a run is judged on, then hand them to the report writers."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from kddad.config import Config
from kddad.data.split import ATTACKS, THRESHOLD_ATTACKS
from kddad.detector import Detector, read_threshold
from kddad.evaluation.views import ROW_COLUMNS, View, below_difficulty, beside, scored, with_distinct_key
from kddad.io import atomic_outputs, npy_chunks
from kddad.paths import Paths
from kddad.reports import alerts, figure_set, metrics_file, plots, table, tracked
from kddad.reports.metrics_file import ReportViews
from kddad.stages.data import split_path
from kddad.stages.model import feature_paths, recorded_run, trained_detector
from kddad.tracking import Tracker

log = logging.getLogger(__name__)


#: Rows scored at a time where a split's scores are all a view keeps: a multiple of every scoring batch.
SCORE_CHUNK = 1 << 18


def split_rows(split: str, paths: Paths = Paths(), features: bool = False) -> pd.DataFrame:
    """What the views read of each row of ``split``, a row group at a time: its :data:`ROW_COLUMNS`
    (record number, labels, difficulty, distinct-row key) and, with ``features``, its raw features
    (rows a report explains)."""
    from kddad.data.split_files import read_chunks

    path = split_path(split, paths)
    parts = []
    for chunk in map(with_distinct_key, read_chunks(path)):
        parts.append(chunk if features else chunk[[c for c in ROW_COLUMNS if c in chunk]])
    if not parts:
        return with_distinct_key(pd.read_parquet(path))
    return pd.concat(parts, ignore_index=True)


def split_view(
    det: Detector,
    split: str,
    paths: Paths = Paths(),
    name: str | None = None,
    keep_arrays: bool = False,
    features: bool = False,
) -> View:
    """``split`` (its rows and encoded features) scored by ``det``, as the view ``name`` (default: ``split``).

    ``keep_arrays``: the view keeps X and the feature scores; without, the split is scored
    :data:`SCORE_CHUNK` rows at a time (a row's score is its own, whatever else is scored with it).
    ``features``: the view's frame keeps the raw features.
    """
    X_path, y_path = feature_paths(split, paths)
    frame = split_rows(split, paths, features)
    y = np.load(y_path)
    if keep_arrays:
        return scored(name or split, frame, np.load(X_path), y, det, keep_arrays)
    scores = [det.score(X)[0] for X in npy_chunks(X_path, SCORE_CHUNK)]
    return View(name or split, frame, y, np.concatenate(scores) if scores else np.empty(0))


def report_views(det: Detector, paths: Paths = Paths()) -> ReportViews:
    """The test split; the test normals beside every held-out attack; the threshold batch and its normals
    beside the threshold pool's attacks; the validation split; NSL-KDD's hard test rows where present."""
    test = split_view(det, "test", paths, keep_arrays=True, features=True)
    heldout = beside("heldout_attacks", test, split_view(det, ATTACKS, paths))
    batch = split_view(det, "threshold", paths, name="threshold_batch")
    return ReportViews(
        test=test,
        heldout_attacks=heldout,
        threshold_batch=batch,
        threshold_pool=beside("threshold_pool", batch, split_view(det, THRESHOLD_ATTACKS, paths)),
        val=split_view(det, "val", paths),
        hard=below_difficulty(test),
    )


def evaluate(cfg: Config, paths: Paths = Paths()) -> dict:
    """Score the test set at the threshold; also all held-out attacks; write metrics, plots, figures."""
    tracker = Tracker(cfg.tracking).connect()
    det = trained_detector(cfg, paths)
    threshold = read_threshold(paths.threshold)
    views = report_views(det, paths)
    # all four swapped in together once written: a failure leaves the last run's, never a mix
    with atomic_outputs("evaluate", paths.metrics, paths.alerts, paths.plots, paths.figures) as out:
        metrics = metrics_file.write(out[0], views, threshold)
        alerts.write(out[1], det, views.test, threshold["threshold"])
        plots.write(out[2], views.test, views.heldout_attacks, threshold["threshold"])
        figure_set.write(out[3], det, views.test, views.heldout_attacks, metrics)
    with tracker.stage_run(cfg, resume=recorded_run(paths.threshold), logs="f1") as run_id:
        tracked.record(tracker, run_id, cfg, paths, metrics, views.test.frame.head(5), det.data)
    for line in table.log_lines(metrics):
        log.info(line)
    if run_id and not tracker.lost:
        runs, run = tracker.ui_links(run_id)
        serve = "" if tracker.remote else f" (after `mlflow ui --backend-store-uri {tracker.uri}`)"
        log.info("MLflow: compare runs at %s%s; this run: %s", runs, serve, run)
    return metrics
