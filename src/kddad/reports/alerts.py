"""alerts.csv: the highest-scoring flagged rows of a view, each with the raw features that drove its score."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kddad.data import fields
from kddad.evaluation.views import View
from kddad.io import atomic_file

if TYPE_CHECKING:
    from kddad.detector import Detector

TOP_ALERTS, TOP_FEATURES = 20, 3


def top_alerts(det: Detector, view: View, threshold: float) -> pd.DataFrame:
    """The ``TOP_ALERTS`` highest-scoring rows above ``threshold``, with their ``TOP_FEATURES`` features."""
    flagged = np.flatnonzero(view.scores > threshold)
    top = flagged[np.argsort(view.scores[flagged], kind="stable")[::-1][:TOP_ALERTS]]
    rows = view.frame.iloc[top]
    out = pd.DataFrame(
        {
            "test_row": top,
            "row": rows[fields.ROW].to_numpy(),
            "label": rows[fields.LABEL].to_numpy(),
            "category": rows[fields.CATEGORY].to_numpy(),
            "instance_score": view.scores[top],
        }
    )
    if det.has_feature_scores and len(top):
        out = pd.concat([out, det.explain(rows, TOP_FEATURES).reset_index(drop=True)], axis=1)
    return out


def write(path: Path, det: Detector, view: View, threshold: float) -> None:
    with atomic_file(path) as tmp:
        top_alerts(det, view, threshold).to_csv(tmp, index=False)
