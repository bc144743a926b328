"""metrics.json: the headline metrics, the operating point and one section per view."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kddad.errors import DetectorError
from kddad.evaluation.metrics import HEADLINE, detection_metrics
from kddad.evaluation.views import View, view_metrics
from kddad.io import write_json


@dataclass(frozen=True, eq=False)
class ReportViews:
    """The views metrics.json is computed on.

    ``heldout_attacks``: the test normals beside every held-out attack (rare attack types count);
    ``threshold_pool``: the threshold batch's normals beside every attack of the threshold pool (not
    test); ``val``: for the false-positive rate on validation normals; ``hard``: NSL-KDD's
    hard test rows, where the split has a difficulty.
    """

    test: View
    heldout_attacks: View
    threshold_batch: View
    threshold_pool: View
    val: View
    hard: View | None = None


def operating_point(threshold: dict, test: dict, held: dict, val_fpr: float) -> dict[str, Any]:
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


def metrics(views: ReportViews, threshold: dict) -> dict[str, Any]:
    """metrics.json's content at the threshold stage's ``threshold`` (threshold.json's dict)."""
    cut = threshold["threshold"]
    test, held = view_metrics(views.test, cut), view_metrics(views.heldout_attacks, cut)
    batch = detection_metrics(views.threshold_batch.y, views.threshold_batch.scores, cut)
    pool = view_metrics(views.threshold_pool, cut)
    macro = held["categories"].get("macro", {})
    out = {
        **{k: test[k] for k in HEADLINE},
        "macro_roc_auc": macro.get("roc_auc", float("nan")),
        "macro_recall": macro.get("recall", float("nan")),
        "operating_point": operating_point(threshold, test, held, float((views.val.scores > cut).mean())),
        "test": {k: v for k, v in test.items() if k not in HEADLINE},
        views.heldout_attacks.name: held,
        views.threshold_batch.name: {k: batch[k] for k in (*HEADLINE, "fpr")},
        views.threshold_pool.name: {k: pool[k] for k in (*HEADLINE, "rows", "outliers", "categories", "distinct")},
    }
    if views.hard is not None:
        out[views.hard.name] = view_metrics(views.hard, cut)
    return out


def write(path: Path, views: ReportViews, threshold: dict) -> dict[str, Any]:
    """Compute metrics.json's content, write it to ``path`` and return it."""
    content = metrics(views, threshold)
    write_json(path, content)
    return content


def read(path: Path) -> dict[str, Any]:
    """A metrics.json as :func:`write` wrote it, its headline figures checked (numbers in [0, 1];
    NaN where a view could not measure one): a damaged or hand-edited file is refused in one line
    naming the key."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise DetectorError(f"{path}: not a metrics file ({type(err).__name__}: {err})") from None
    if not isinstance(content, dict):
        raise DetectorError(f"{path}: expected a JSON object of the evaluate stage's metrics")
    for key in HEADLINE:
        if key not in content:
            raise DetectorError(
                f"{path}: key {key!r} missing; expected the evaluate stage's metrics (dvc repro evaluate)"
            )
        value = content[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (math.isnan(value) or 0 <= value <= 1)
        if not ok:
            raise DetectorError(f"{path}: key {key!r}: expected a number in [0, 1], got {value!r}")
    return content
