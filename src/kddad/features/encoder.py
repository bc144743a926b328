"""Feature encoding fitted on normal training rows: optional log1p, scaling, one-hot.

scikit-learn fits the statistics (its scalers and OneHotEncoder); the fitted encoder is then a
plain spec (per-column multiplier and offset, category lists) applied with numpy, and saved as
JSON. Loading a saved encoder reads numbers and strings: nothing is unpickled, and no model
library (skops would import torch through scikit-learn) is imported by the data stages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kddad.data import schema
from kddad.errors import DataError
from kddad.io import atomic_dir, write_json

log = logging.getLogger(__name__)

#: scikit-learn's scaler class per method (imported when fitting: a stage that only encodes starts faster)
SCALERS = {"standard": "StandardScaler", "minmax": "MinMaxScaler", "robust": "RobustScaler", "none": None}
_META = "encoder.json"
FORMAT = 1


def _affine(method: str, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, offset) with scaled = x * multiplier + offset, from a scikit-learn scaler fit."""
    n = X.shape[1]
    if method == "none" or n == 0:
        return np.ones(n), np.zeros(n)
    from sklearn import preprocessing

    scaler = getattr(preprocessing, SCALERS[method])().fit(X)
    if method == "minmax":
        return scaler.scale_.astype(float), scaler.min_.astype(float)
    center = scaler.mean_ if method == "standard" else scaler.center_
    return 1.0 / scaler.scale_, -center / scaler.scale_  # zero-spread columns have scale_ 1


class FeatureEncoder:
    """Turn KDD rows (a DataFrame with KDD column names) into a float32 matrix."""

    def __init__(
        self,
        numeric: Sequence[str],
        categorical: Sequence[str] = (),
        scaling: str = "standard",
        log1p: bool | str | Sequence[str] = False,
    ) -> None:
        if scaling not in SCALERS:
            raise ValueError(f"scaling must be one of {sorted(SCALERS)}, got {scaling!r}")
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.scaling, self.log1p = scaling, log1p
        self.logged = [c for c in self.numeric if c in schema.log1p_columns(log1p)]
        self._mul: np.ndarray | None = None
        self._add: np.ndarray | None = None
        self._categories: dict[str, list[str]] = {}

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def fitted(self) -> bool:
        return self._mul is not None

    def _frame(self, df: pd.DataFrame, what: str) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise DataError(f"{what}: missing column(s) {missing}; the encoder needs {self.columns}")
        return df[self.columns]

    def _numeric(self, df: pd.DataFrame) -> np.ndarray:
        X = df[self.numeric].to_numpy(dtype=np.float64, copy=True)
        if self.logged:
            idx = [self.numeric.index(c) for c in self.logged]
            with np.errstate(invalid="ignore", divide="ignore"):
                X[:, idx] = np.log1p(X[:, idx])
        return X

    def fit(self, df: pd.DataFrame) -> FeatureEncoder:
        """Fit scaling and categories on (normal, training) rows only."""
        frame = self._frame(df, "fit data")
        self._mul, self._add = _affine(self.scaling, self._numeric(frame))
        if self.categorical:
            from sklearn.preprocessing import OneHotEncoder

            onehot = OneHotEncoder(handle_unknown="ignore").fit(frame[self.categorical].astype(str))
            self._categories = {c: [str(v) for v in cats] for c, cats in zip(self.categorical, onehot.categories_)}
        return self

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("FeatureEncoder is not fitted: call fit() or load() first")

    @property
    def feature_names(self) -> list[str]:
        self._check_fitted()
        return [*self.numeric, *(f"{c}_{v}" for c, cats in self._categories.items() for v in cats)]

    @property
    def groups(self) -> list[tuple[str, int, int]]:
        """(raw column, first, end) of the encoded columns each raw column became, in order: a
        numeric column is one encoded column, a categorical one its one-hot block."""
        self._check_fitted()
        spans = [(c, i, i + 1) for i, c in enumerate(self.numeric)]
        start = len(self.numeric)
        for col, cats in self._categories.items():
            spans.append((col, start, start + len(cats)))
            start += len(cats)
        return spans

    @property
    def categories(self) -> dict[str, list[str]]:
        self._check_fitted()
        return dict(self._categories)

    def unknown_categories(self, df: pd.DataFrame) -> dict[str, dict[str, int]]:
        """Categories not seen in fit, with their row counts: they encode as all-zero one-hots."""
        found = {}
        for col, known in self.categories.items():
            counts = df.loc[~df[col].astype(str).isin(known), col].value_counts()
            if len(counts):
                found[col] = {str(k): int(v) for k, v in counts.items()}
        return found

    def transform(self, df: pd.DataFrame, what: str = "data", report_unknown: bool = True) -> np.ndarray:
        """Encode rows; unseen categories become all-zero one-hots (logged), never an error.

        ``report_unknown=False``: the caller counts them itself (``unknown_categories``).
        """
        self._check_fitted()
        frame = self._frame(df, what)
        if report_unknown and (unknown := self.unknown_categories(frame)):
            log.info("%s: categories unseen in training, encoded as all zeros: %s", what, unknown)
        parts = [(self._numeric(frame) * self._mul + self._add).astype(np.float32)]
        for col, cats in self._categories.items():
            codes = pd.Index(cats).get_indexer(frame[col].astype(str))  # -1: unseen
            onehot = np.zeros((len(frame), len(cats)), np.float32)
            seen = codes >= 0
            onehot[np.flatnonzero(seen), codes[seen]] = 1.0
            parts.append(onehot)
        X = np.concatenate(parts, axis=1)
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            raise DataError(
                f"{what}: row {r}, feature {self.feature_names[c]!r} encodes to {X[r, c]} "
                "(log1p of a negative value?); expected finite values"
            )
        return X

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.fit(df).transform(df, "fit data")

    def describe(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "format": FORMAT,
            "numeric": self.numeric,
            "categorical": self.categorical,
            "scaling": self.scaling,
            "log1p": list(self.logged),  # the columns, not the spec: a later release may name sets otherwise
            "logged": self.logged,
            "multiplier": self._mul.tolist(),
            "offset": self._add.tolist(),
            "categories": self._categories,
            "feature_names": self.feature_names,
        }

    def save(self, path: str | Path) -> Path:
        """Write the encoder folder (one JSON file) atomically."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            write_json(tmp / _META, self.describe())
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureEncoder:
        """Load a saved encoder: plain JSON, checked for shape and consistency."""
        file = Path(path) / _META
        try:
            meta = json.loads(file.read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
            enc = cls(meta["numeric"], meta["categorical"], meta["scaling"], meta["log1p"])
            enc._mul = np.asarray(meta["multiplier"], dtype=np.float64)
            enc._add = np.asarray(meta["offset"], dtype=np.float64)
            enc._categories = {str(c): [str(v) for v in meta["categories"][c]] for c in enc.categorical}
            if enc._mul.shape != (len(enc.numeric),) or enc._add.shape != (len(enc.numeric),):
                raise ValueError(f"multiplier/offset need {len(enc.numeric)} values, one per numeric column")
            if not (np.isfinite(enc._mul).all() and np.isfinite(enc._add).all()):
                raise ValueError("multiplier/offset hold non-finite values")
            if enc.feature_names != meta["feature_names"] or enc.logged != meta["logged"]:
                raise ValueError("feature_names/logged disagree with the columns and categories")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{file}: not a valid kddad encoder ({type(err).__name__}: {err})") from None
        return enc
