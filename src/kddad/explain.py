"""Which raw KDD features drove each row's score, with their share of it (``Detector.explain``).

A feature's contribution is its score above a reference (the median score of held-out normal
rows, kept at fit): a feature that scores high on every normal row explains nothing. The
encoded columns of one raw feature (:attr:`FeatureEncoder.groups`: a categorical feature's
one-hot block) are summed into it and shown with the row's value (``service=private``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kddad.features.encoder import ColumnGroup


def top_features(
    X: np.ndarray | pd.DataFrame,
    feature_score: np.ndarray,
    reference: np.ndarray | None,
    groups: list[ColumnGroup],
    k: int,
) -> pd.DataFrame:
    """Columns ``feature_1, share_1, …, feature_k, share_k``, one row per row of ``X``.

    ``share_i``: the feature's part of the row's total excess over ``reference`` (0 for a row
    with none); ``groups`` cover the encoded columns in order. ``k`` is capped at the number of
    features.
    """
    excess = feature_score - (reference if reference is not None else 0)
    excess = np.add.reduceat(excess, [g.columns.start for g in groups], axis=1)
    names = np.array([g.feature for g in groups], dtype=object)
    k = min(k, excess.shape[1])
    positive = np.clip(excess, 0, None)
    total = positive.sum(1, keepdims=True)
    share = np.divide(positive, total, out=np.zeros_like(positive), where=total > 0)
    top = (
        np.argpartition(-excess, k - 1, axis=1)[:, :k]
        if k < excess.shape[1]
        else np.tile(np.arange(excess.shape[1]), (len(excess), 1))
    )
    order = np.argsort(-np.take_along_axis(excess, top, 1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, 1)
    frame = X if isinstance(X, pd.DataFrame) else None
    shown = {}  # a categorical feature's group → each row's label, shown with the row's value: service=private
    for i, g in enumerate(groups):
        if g.categorical and frame is not None and (top == i).any():
            codes, values = pd.factorize(frame[g.feature])  # a few dozen values: label those, not every row
            shown[i] = np.array([f"{g.feature}={v}" for v in values], dtype=object)[codes]
    out = {}
    for rank in range(k):
        idx = top[:, rank]
        labels = names[idx]
        for i, per_row in shown.items():
            hit = idx == i
            labels[hit] = per_row[hit]
        out[f"feature_{rank + 1}"] = labels
        out[f"share_{rank + 1}"] = np.take_along_axis(share, idx[:, None], 1)[:, 0].astype(np.float32)
    return pd.DataFrame(out, index=frame.index if frame is not None else None)
