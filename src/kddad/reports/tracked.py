"""The MLflow record of an evaluation: metrics, report files and tables, the config and the pyfunc model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kddad.config import Config
from kddad.paths import Paths
from kddad.pyfunc import log_detector
from kddad.reports.run_metrics import TABLES_DIR, run_metrics, tables
from kddad.tracking import Tracker, dataset_identity


def record(
    tracker: Tracker,
    run_id: str | None,
    cfg: Config,
    paths: Paths,
    metrics: dict[str, Any],
    example: pd.DataFrame,
    data: dict[str, Any] | None = None,
) -> None:
    """Into ``run_id`` (nothing without one): metrics.json, alerts.csv, threshold.json, the config, the
    figures, metrics.json's tables (``tables/*.csv``), the detector as a pyfunc model with ``example``
    rows as its input example, then the run's metrics (:func:`~kddad.reports.run_metrics.run_metrics`),
    each also the model's, on ``data`` (the detector's training file)."""
    if not run_id:
        return
    for report in (paths.metrics, paths.alerts, paths.threshold):
        tracker.log_artifact(run_id, report)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False), encoding="utf-8")
        tracker.log_artifact(run_id, config_file)
        for name, table in tables(metrics).items():
            csv = Path(tmp) / f"{name}.csv"
            table.to_csv(csv, index=False)
            tracker.log_artifact(run_id, csv, TABLES_DIR)
    for png in sorted(paths.figures.glob("*.png")):
        tracker.log_artifact(run_id, png, "figures")
    tags = {"run": tracker.client.get_run(run_id).info.run_name}
    if data and data.get("sha256"):
        tags["dataset"] = "{} ({})".format(*dataset_identity(data))
    model = log_detector(tracker, run_id, paths.detector, paths.threshold, example, cfg.tracking.register_as, tags)
    tracker.log_metrics(run_id, run_metrics(metrics), model_id=model.model_id, data=data)
