"""Which of metrics.json's figures an MLflow run holds as metrics, and the tables that hold the rest.

A run's metrics are what people compare across runs in MLflow's runs table, charts and compare
view: the headline, the held-out attacks' macro and per-category figures, the operating point's
cost, the threshold batch's and pool's figures (a sweep's objective and what detection choices are
made on), and the training curves. Plain names sort first; a per-category figure is
``<metric>.<category>`` (``roc_auc.r2l``), one of another view ``<view>.<metric>``. Every other
figure (each view's confusion counts, the distinct-rows views, recall at each FPR, recall by
attack type) is a cell of a CSV table logged beside metrics.json, which stays whole as an artifact
and in ``reports/metrics.json`` for DVC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from kddad.evaluation.metrics import HEADLINE
from kddad.evaluation.views import HARD_DIFFICULTY

#: Held-out attack categories' figures a run logs, each as ``<metric>.<category>``
CATEGORY_METRICS = ("roc_auc", "recall")
#: (MLflow metric, metrics.json key) of every view-level figure a run logs; a missing key is skipped
NAMED: tuple[tuple[str, str], ...] = (
    *((m, m) for m in HEADLINE),
    ("accuracy", "test.accuracy"),
    ("macro_roc_auc", "macro_roc_auc"),
    ("macro_recall", "macro_recall"),
    ("fpr", "operating_point.fpr_test_normals"),
    ("fpr_val", "operating_point.fpr_val_normals"),
    *((f"threshold_batch.{m}", f"threshold_batch.{m}") for m in (*HEADLINE, "fpr")),
    ("threshold_pool.roc_auc", "threshold_pool.roc_auc"),
    ("threshold_pool.macro_roc_auc", "threshold_pool.categories.macro.roc_auc"),
    *((f"hard.{m}", f"test_difficulty_below_{HARD_DIFFICULTY}.{m}") for m in ("f1", "roc_auc", "accuracy")),
)
#: Logged by the threshold stage (``operating_point.threshold`` in metrics.json)
THRESHOLD = "threshold"
#: The tables beside metrics.json in a run's artifacts (``tables/<name>.csv``)
TABLES_DIR = "tables"
#: A row of a table is named by these columns: a view and, per category or attack type, which
VIEWS, CATEGORIES, ATTACKS = "views", "categories", "attacks"
ROW_KEYS = {VIEWS: ("view",), CATEGORIES: ("view", "category"), ATTACKS: ("view", "attack")}
#: The key parts after which a view's figures are per category / per attack type
_SECTIONS = {"categories": CATEGORIES, "recall_by_attack": ATTACKS}
#: metrics.json's top-level figures that are the test view's (the headline)
_TEST = "test"


def flat(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """metrics.json's numbers, keyed by their dotted path (``test.confusion.tp``)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def categories(metrics: Mapping[str, Any]) -> list[str]:
    """The held-out attacks' categories (``dos``, ``probe``, …), without the macro and inlier rows."""
    cats = metrics.get("heldout_attacks", {}).get("categories", {})
    return [c for c in cats if c not in ("macro", "inliers")]


def run_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The figures of metrics.json a run logs as MLflow metrics, by their MLflow names."""
    numbers = flat(metrics)
    out = {name: numbers[key] for name, key in NAMED if key in numbers}
    for cat in categories(metrics):
        for m in CATEGORY_METRICS:
            key = f"heldout_attacks.categories.{cat}.{m}"
            if key in numbers:
                out[f"{m}.{cat}"] = numbers[key]
    return out


def metric_of(key: str, metrics: Mapping[str, Any]) -> str | None:
    """The MLflow metric that holds metrics.json's ``key``, or None when only a table holds it."""
    if key == "operating_point.threshold":
        return THRESHOLD
    if key.startswith("operating_point.recall."):
        key = f"heldout_attacks.categories.{key.rsplit('.', 1)[1]}.recall"
    if key == "operating_point.macro_recall":
        key = "macro_recall"
    for name, source in NAMED:
        if source == key:
            return name
    parts = key.split(".")
    if parts[:2] == ["heldout_attacks", "categories"] and len(parts) == 4 and parts[3] in CATEGORY_METRICS:
        return f"{parts[3]}.{parts[2]}" if parts[2] in categories(metrics) else None
    return None


def cell_of(key: str) -> tuple[str, tuple[str, ...], str] | None:
    """Where metrics.json's ``key`` sits in the tables: (table, row key, column); None for the
    operating point's figures, which are metrics (:func:`metric_of`)."""
    parts = key.split(".")
    if parts[0] == "operating_point":
        return None
    if len(parts) == 1:  # the headline and the held-out macro figures
        if key.startswith("macro_"):
            return CATEGORIES, ("heldout_attacks", "macro"), key.removeprefix("macro_")
        return VIEWS, (_TEST,), key
    for i, part in enumerate(parts):
        if part in _SECTIONS and i + 2 < len(parts):
            return _SECTIONS[part], (".".join(parts[:i]), parts[i + 1]), ".".join(parts[i + 2 :])
    split = 2 if len(parts) > 2 and parts[1] == "distinct" else 1
    return VIEWS, (".".join(parts[:split]),), ".".join(parts[split:])


def tables(metrics: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Every figure of metrics.json but the operating point's, as CSV-ready tables: ``views`` (a row
    per view: the headline, FPR, confusion counts, rows), ``categories`` (a row per view and attack
    category: recall, ROC-AUC, PR-AUC, recall at each FPR) and ``attacks`` (recall per attack type)."""
    rows: dict[str, dict[tuple[str, ...], dict[str, float]]] = {t: {} for t in ROW_KEYS}
    numbers = flat(metrics)
    # the top-level figures repeat the test view's and the held-out macro's: their rows come in order
    for key in sorted(numbers, key=lambda k: "." not in k):
        cell = cell_of(key)
        if cell:
            table, row, column = cell
            rows[table].setdefault(row, {}).setdefault(column, numbers[key])
    out = {}
    for table, by_row in rows.items():
        records = [{**dict(zip(ROW_KEYS[table], row)), **values} for row, values in by_row.items()]
        out[table] = pd.DataFrame.from_records(records, columns=_columns(table, records))
    return out


def _columns(table: str, records: list[dict[str, Any]]) -> list[str]:
    """The row-key columns, then the figures in the order first met."""
    seen = dict.fromkeys(ROW_KEYS[table])
    for record in records:
        seen.update(dict.fromkeys(record))
    return list(seen)


def placement(metrics: Mapping[str, Any]) -> dict[str, str]:
    """Where each number of metrics.json goes in a run: ``metric <name>``, and/or
    ``tables/<table>.csv [<row>] <column>`` (a listing for docs and tests)."""
    out = {}
    for key in flat(metrics):
        places = []
        name = metric_of(key, metrics)
        if name:
            places.append(f"metric {name}")
        cell = cell_of(key)
        if cell:
            table, row, column = cell
            places.append(f"{TABLES_DIR}/{table}.csv [{', '.join(row)}] {column}")
        out[key] = "; ".join(places)
    return out
