"""Feature encoding fitted on normal training rows: optional log1p, scaling, one-hot.

Saved as skops (loaded with skops' default trusted types only, so a tampered file cannot run
code) plus a JSON description; never pickled.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

from kddad.data import schema
from kddad.errors import DataError
from kddad.io import atomic_dir, write_json

log = logging.getLogger(__name__)

SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler, "none": None}
_MODEL, _META = "encoder.skops", "encoder.json"


def _scaler(method: str):
    cls = SCALERS[method]
    return "passthrough" if cls is None else cls()


class FeatureEncoder:
    """Turn KDD rows (a DataFrame with KDD column names) into a float32 matrix."""

    def __init__(self, numeric: Sequence[str], categorical: Sequence[str] = (), scaling: str = "standard",
                 log1p: bool = False) -> None:
        if scaling not in SCALERS:
            raise ValueError(f"scaling must be one of {sorted(SCALERS)}, got {scaling!r}")
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.scaling, self.log1p = scaling, log1p
        self._ct: ColumnTransformer | None = None

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def _build(self) -> ColumnTransformer:
        logged = [c for c in self.numeric if self.log1p and c in schema.HEAVY_TAILED]
        plain = [c for c in self.numeric if c not in logged]
        parts = []
        if logged:
            log1p = FunctionTransformer(np.log1p, feature_names_out="one-to-one")
            parts.append(("log", Pipeline([("log1p", log1p), ("scale", _scaler(self.scaling))]), logged))
        if plain:
            parts.append(("num", _scaler(self.scaling), plain))
        if self.categorical:
            onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
            parts.append(("cat", onehot, self.categorical))
        return ColumnTransformer(parts, sparse_threshold=0, verbose_feature_names_out=False)

    def _frame(self, df: pd.DataFrame, what: str) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise DataError(f"{what}: missing column(s) {missing}; the encoder needs {self.columns}")
        return df[self.columns]

    def fit(self, df: pd.DataFrame) -> "FeatureEncoder":
        """Fit scaling and categories on (normal, training) rows only."""
        self._ct = self._build().fit(self._frame(df, "fit data"))
        return self

    @property
    def feature_names(self) -> list[str]:
        return [str(n) for n in self._fitted.get_feature_names_out()]

    @property
    def categories(self) -> dict[str, list[str]]:
        if not self.categorical:
            return {}
        onehot = self._fitted.named_transformers_["cat"]
        return {c: [str(v) for v in cats] for c, cats in zip(self.categorical, onehot.categories_)}

    @property
    def _fitted(self) -> ColumnTransformer:
        if self._ct is None:
            raise RuntimeError("FeatureEncoder is not fitted: call fit() or load() first")
        return self._ct

    def unknown_categories(self, df: pd.DataFrame) -> dict[str, dict[str, int]]:
        """Categories not seen in fit, with their row counts: they encode as all-zero one-hots."""
        found = {}
        for col, known in self.categories.items():
            counts = df.loc[~df[col].isin(known), col].value_counts()
            if len(counts):
                found[col] = {str(k): int(v) for k, v in counts.items()}
        return found

    def transform(self, df: pd.DataFrame, what: str = "data") -> np.ndarray:
        """Encode rows; unseen categories become all-zero one-hots (logged), never an error."""
        frame = self._frame(df, what)
        unknown = self.unknown_categories(frame)
        if unknown:
            log.info("%s: categories unseen in training, encoded as all zeros: %s", what, unknown)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
            with np.errstate(invalid="ignore", divide="ignore"):
                X = np.asarray(self._fitted.transform(frame), dtype=np.float32)
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            raise DataError(f"{what}: row {r}, feature {self.feature_names[c]!r} encodes to {X[r, c]} "
                            "(log1p of a negative value?); expected finite values")
        return X

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        return self.fit(df).transform(df, "fit data")

    def describe(self) -> dict:
        return {"numeric": self.numeric, "categorical": self.categorical, "scaling": self.scaling,
                "log1p": self.log1p, "feature_names": self.feature_names, "categories": self.categories}

    def save(self, path: str | Path) -> Path:
        """Write the encoder folder (skops + JSON) atomically."""
        import skops.io as sio

        path = Path(path)
        with atomic_dir(path) as tmp:
            sio.dump(self._fitted, tmp / _MODEL)
            write_json(tmp / _META, self.describe())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FeatureEncoder":
        """Load a saved encoder; refuses any type outside skops' trusted scikit-learn/numpy set."""
        import skops.io as sio

        path = Path(path)
        try:
            meta = json.loads((path / _META).read_text(encoding="utf-8"))
            enc = cls(meta["numeric"], meta["categorical"], meta["scaling"], meta["log1p"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path / _META}: not a kddad encoder description ({err})") from None
        untrusted = sio.get_untrusted_types(file=path / _MODEL)
        if untrusted:
            raise DataError(f"{path / _MODEL}: refusing to load untrusted types {untrusted}; "
                            "expected only scikit-learn/numpy preprocessing objects")
        ct = sio.load(path / _MODEL, trusted=None)
        if not isinstance(ct, ColumnTransformer):
            raise DataError(f"{path / _MODEL}: expected a ColumnTransformer, got {type(ct).__name__}")
        enc._ct = ct
        if enc.feature_names != meta.get("feature_names"):
            raise DataError(f"{path}: {_MODEL} and {_META} disagree on the feature names; re-run the encode stage")
        return enc
