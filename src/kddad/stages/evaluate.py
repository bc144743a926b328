"""The evaluate stage: score the views a run is judged on, then hand them to the report writers."""

from __future__ import annotations

import logging

from kddad.config import Config
from kddad.data.split import ATTACKS, THRESHOLD_ATTACKS
from kddad.detector import Detector, read_threshold
from kddad.evaluation.views import View, below_difficulty, beside, scored
from kddad.paths import Paths
from kddad.reports import alerts, figure_set, metrics_file, plots, table, tracked
from kddad.reports.metrics_file import ReportViews
from kddad.stages.data import load_split
from kddad.stages.model import load_features, recorded_run, trained_detector
from kddad.tracking import Tracker

log = logging.getLogger(__name__)


def split_view(
    det: Detector, split: str, paths: Paths = Paths(), name: str | None = None, keep_arrays: bool = False
) -> View:
    """``split`` (its rows and encoded features) scored by ``det``, as the view ``name`` (default: ``split``)."""
    X, y = load_features(split, paths)
    return scored(name or split, load_split(split, paths), X, y, det, keep_arrays)


def report_views(det: Detector, paths: Paths = Paths()) -> ReportViews:
    """The test split; the test normals beside every held-out attack; the threshold batch and its normals
    beside the threshold pool's attacks; the validation split; NSL-KDD's hard test rows where present."""
    test = split_view(det, "test", paths, keep_arrays=True)
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
    metrics = metrics_file.write(paths.metrics, views, threshold)
    alerts.write(paths.alerts, det, views.test, threshold["threshold"])
    plots.write(paths.plots, views.test, views.heldout_attacks, threshold["threshold"])
    figure_set.write(paths.figures, det, views.test, views.heldout_attacks, metrics)
    with tracker.stage_run(cfg, resume=recorded_run(paths.threshold), logs="f1") as run_id:
        tracked.record(tracker, run_id, cfg, paths, metrics, views.test.frame.head(5), det.data)
    for line in table.log_lines(metrics):
        log.info(line)
    if run_id and not tracker.lost:
        runs, run = tracker.ui_links(run_id)
        serve = "" if tracker.remote else f" (after `mlflow ui --backend-store-uri {tracker.uri}`)"
        log.info("MLflow: compare runs at %s%s; this run: %s", runs, serve, run)
    return metrics
