"""What a scored file must hold: the library's own predictions and explanations, row for row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kddad.detector import Detector


def expected_scores(det: Detector, df: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """``det``'s scores, flags and top-``k`` explanations of ``df``, as `kddad score` writes them."""
    pred = det.predict(df)
    out = pd.DataFrame({"instance_score": pred.instance_score, "is_outlier": pred.is_outlier})
    return pd.concat([out, det.explain(df, k, prediction=pred).reset_index(drop=True)], axis=1)


def assert_same_scores(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """``got`` (a scored file, with its row column) holds ``want``'s scores, flags and explanations."""
    if "row" in got:
        assert list(got["row"]) == list(range(len(want)))
    np.testing.assert_allclose(got["instance_score"], want["instance_score"], rtol=1e-5)
    assert (got["is_outlier"].to_numpy() == want["is_outlier"].to_numpy()).all()
    for i in (1, 2, 3):
        assert (got[f"feature_{i}"].to_numpy() == want[f"feature_{i}"].to_numpy()).all()
        np.testing.assert_allclose(got[f"share_{i}"], want[f"share_{i}"], rtol=1e-4, atol=1e-6)
