"""The MLflow record of an evaluation: metrics, report files, the config and the pyfunc model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kddad.config import Config
from kddad.paths import Paths
from kddad.pyfunc import log_detector
from kddad.tracking import Tracker


def record(
    tracker: Tracker, run_id: str | None, cfg: Config, paths: Paths, metrics: dict[str, Any], example: pd.DataFrame
) -> None:
    """Into ``run_id`` (nothing without one): metrics, metrics.json, alerts.csv, threshold.json, the
    config, the figures and the detector as a pyfunc model with ``example`` rows as its input example."""
    if not run_id:
        return
    tracker.log_metrics(run_id, metrics)
    for report in (paths.metrics, paths.alerts, paths.threshold):
        tracker.log_artifact(run_id, report)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False), encoding="utf-8")
        tracker.log_artifact(run_id, config_file)
    for png in sorted(paths.figures.glob("*.png")):
        tracker.log_artifact(run_id, png, "figures")
    log_detector(tracker, run_id, paths.detector, paths.threshold, example, cfg.tracking.register_as)
