"""Where a threshold falls given scores: rules the threshold stage, the detector and the benchmarks share."""

from __future__ import annotations

import numpy as np


def best_f1_cut(scores: np.ndarray, is_outlier: np.ndarray) -> float:
    """The threshold (flag ``score > threshold``) with the highest F1 on labelled rows.

    Every distinct score is a candidate lowest flagged score; among equal F1s the highest cut wins
    (fewer alerts). The cut lies halfway to the next lower score, so new rows scored between the
    batch's flagged and unflagged rows split evenly, not all to one side.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_outlier).astype(bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # the last row of each run of equal scores
    tp = np.cumsum(y)[last]
    f1 = 2 * tp / (y.sum() + last + 1)
    i = int(np.argmax(f1))
    low = s[last[i]]
    below = s[last[i] + 1] if last[i] + 1 < len(s) else None
    return float(np.nextafter(low, -np.inf) if below is None else low + (below - low) / 2)
