"""What an MLflow run of an evaluation must hold: every number of its metrics.json, as a metric or
in one of the tables logged beside it."""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from kddad.reports.run_metrics import ROW_KEYS, TABLES_DIR, cell_of, flat, metric_of, placement

#: The most metrics a run may hold (what MLflow's runs table, compare view and charts list)
MAX_METRICS = 60


@contextmanager
def at(folder: Path):
    """Work in ``folder`` (a project root: its store's artifact locations are relative to it)."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_tables(client: MlflowClient, run_id: str, root: Path) -> dict[str, pd.DataFrame]:
    """The run's ``tables/*.csv`` artifacts, indexed by their row keys."""
    with tempfile.TemporaryDirectory() as tmp, at(root):
        folder = Path(client.download_artifacts(run_id, TABLES_DIR, tmp))
        return {
            name: pd.read_csv(folder / f"{name}.csv", dtype={k: str for k in keys}).set_index(list(keys))
            for name, keys in ROW_KEYS.items()
        }


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def where_each_went(client: MlflowClient, run_id: str, metrics: dict, root: Path) -> dict[str, str]:
    """Check that every number of ``metrics`` (metrics.json) is in run ``run_id`` where
    :func:`~kddad.reports.run_metrics.placement` says, with its value, and that the run holds at most
    :data:`MAX_METRICS` metrics; returns the listing (metrics.json key: where it went)."""
    logged = client.get_run(run_id).data.metrics
    assert len(logged) <= MAX_METRICS, f"{len(logged)} metrics: {sorted(logged)}"
    tables = run_tables(client, run_id, root)
    listing = placement(metrics)
    for key, value in flat(metrics).items():
        assert listing[key], f"{key}: in no metric and no table"
        name = metric_of(key, metrics)
        if name:
            assert name in logged and _same(logged[name], value), f"{key}: metric {name}"
        cell = cell_of(key)
        if cell:
            table, row, column = cell
            frame = tables[table]
            found = frame.loc[row if len(row) > 1 else row[0], column]
            assert _same(float(found), value), f"{key}: {listing[key]} holds {found}, expected {value}"
    return listing
