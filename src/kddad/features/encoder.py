"""Feature encoding fitted on normal training rows: optional log1p, scaling, one-hot.

scikit-learn fits the statistics (its scalers and OneHotEncoder); the fitted encoder is then a
plain spec (per-column multiplier and offset, category lists) applied with numpy, and saved as
JSON. Loading a saved encoder reads numbers and strings: nothing is unpickled, and no model
library (skops would import torch through scikit-learn) is imported by the data stages.

A saved ``encoder.json`` is untrusted input: :meth:`FeatureEncoder.load` validates every key
(:class:`EncoderFile`, unknown keys refused) and every value's range before anything is
computed with it, naming the file and the key at fault. The helpers that do so for any saved
JSON description are in :mod:`kddad.saved`.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator

from kddad.data import fields
from kddad.errors import DataError
from kddad.io import atomic_dir, write_json
from kddad.saved import Name, Strict, format_version, invalid, read_description, safe

log = logging.getLogger(__name__)

#: scikit-learn's scaler class per method (imported when fitting: a stage that only encodes starts faster)
SCALERS = {"standard": "StandardScaler", "minmax": "MinMaxScaler", "robust": "RobustScaler", "none": None}
_META = "encoder.json"
FORMAT = 1

#: The largest multiplier a saved encoder may hold. A multiplier is 1 / the spread of a column
#: (standard: std, robust: IQR, minmax: range); the raw features are counts and sizes up to
#: ~1e9 (src_bytes) on an integer grid and rates in [0, 1] on a 0.01 grid, and scikit-learn
#: scales a column whose spread is within float rounding of its mean as a constant one
#: (multiplier 1), so fitted multipliers stay far below 1e6. 1e12 leaves a wide margin while a
#: raw value of 1e10 still encodes to at most 1e22, far inside float32 (3.4e38).
MAX_MULTIPLIER = 1e12
#: The largest |offset| (offset = -centre x multiplier: a centre of ~1e9 times a generous
#: multiplier; a constant column's offset is minus its mean).
MAX_OFFSET = 1e15


def _finite_in(low: float, high: float, *, low_open: bool) -> Callable[[float], float]:
    span = f"{'(' if low_open else '['}{low:g}, {high:g}]".replace("e+", "e")

    def check(v: float) -> float:
        if not (math.isfinite(v) and (low < v if low_open else low <= v) and v <= high):
            raise ValueError(f"expected a finite value in {span}")
        return v

    return check


def _unique(v: list[str]) -> list[str]:
    dup = next((c for i, c in enumerate(v) if c in v[:i]), None)
    if dup is not None:
        raise ValueError(f"lists {dup!r} twice; expected each once")
    return v


def _kdd_column(allowed: tuple[str, ...], kind: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        if v not in allowed:
            close = difflib.get_close_matches(v, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(allowed[:4])}, …"
            raise ValueError(f"not one of the {len(allowed)} {kind} KDD features ({hint})")
        return v

    return check


Number = Annotated[float, Field(strict=True)]
NumericColumn = Annotated[str, Field(strict=True), AfterValidator(_kdd_column(fields.NUMERIC, "numeric"))]
CategoricalColumn = Annotated[str, Field(strict=True), AfterValidator(_kdd_column(fields.CATEGORICAL, "categorical"))]


class EncoderFile(Strict):
    """``encoder.json``, every key checked; written by :meth:`FeatureEncoder.describe`."""

    format: Annotated[int, Field(strict=True), AfterValidator(format_version(FORMAT))]
    numeric: Annotated[list[NumericColumn], AfterValidator(_unique)]
    categorical: Annotated[list[CategoricalColumn], AfterValidator(_unique)]
    scaling: Literal["standard", "minmax", "robust", "none"]
    log1p: Any  # the logged columns (a list); true/false in files of earlier releases
    logged: list[Annotated[str, Field(strict=True)]]
    multiplier: list[Annotated[Number, AfterValidator(_finite_in(0, MAX_MULTIPLIER, low_open=True))]]
    offset: list[Annotated[Number, AfterValidator(_finite_in(-MAX_OFFSET, MAX_OFFSET, low_open=False))]]
    categories: dict[
        str,
        Annotated[list[Name], Field(min_length=1), AfterValidator(_unique)],
    ]
    feature_names: list[Annotated[str, Field(strict=True)]]

    @field_validator("log1p")
    @classmethod
    def _log1p(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
            raise ValueError("expected a list of numeric KDD features (or true/false)")
        bad = [c for c in v if c not in fields.NUMERIC]
        if bad:
            raise ValueError(f"{[safe(c, 40) for c in bad[:3]]} are not numeric KDD features")
        return _unique(v)

    @field_validator("logged")
    @classmethod
    def _logged(cls, v: list[str], info: ValidationInfo) -> list[str]:
        d = info.data
        if "numeric" in d and "log1p" in d and v != [c for c in d["numeric"] if c in fields.log1p_columns(d["log1p"])]:
            raise ValueError("disagrees with numeric and log1p; expected the numeric columns log1p names")
        return v

    @field_validator("multiplier", "offset")
    @classmethod
    def _one_per_column(cls, v: list[float], info: ValidationInfo) -> list[float]:
        n = len(info.data.get("numeric", v))
        if len(v) != n:
            raise ValueError(f"expected {n} values, one per numeric column, got {len(v)}")
        return v

    @field_validator("categories")
    @classmethod
    def _per_column(cls, v: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        cols = info.data.get("categorical")
        if cols is not None and set(v) != set(cols):
            extra, missing = sorted(set(v) - set(cols)), [c for c in cols if c not in v]
            raise ValueError(
                "expected one list per categorical column"
                + (f"; {[safe(c, 40) for c in extra]} are not categorical columns here" if extra else "")
                + (f"; {missing} have none" if missing else "")
            )
        return v

    @field_validator("feature_names")
    @classmethod
    def _names(cls, v: list[str], info: ValidationInfo) -> list[str]:
        d = info.data
        if all(k in d for k in ("numeric", "categorical", "categories")):
            want = [*d["numeric"], *(f"{c}_{x}" for c in d["categorical"] for x in d["categories"][c])]
            if v != want:
                raise ValueError("disagree with the columns and categories; expected the encoded columns in order")
        return v


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


@dataclass(frozen=True)
class ColumnGroup:
    """One raw KDD feature and the encoded columns it became (:attr:`FeatureEncoder.groups`)."""

    feature: str
    columns: slice  # into the encoded row, step 1
    categorical: bool  # a one-hot block, one column per category

    @classmethod
    def each_column(cls, n: int) -> list[ColumnGroup]:
        """Groups for rows encoded elsewhere: each column its own feature, named ``f0``, ``f1``…"""
        return [cls(f"f{i}", slice(i, i + 1), categorical=False) for i in range(n)]


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
        self.logged = [c for c in self.numeric if c in fields.log1p_columns(log1p)]
        self._mul: np.ndarray | None = None
        self._add: np.ndarray | None = None
        self._categories: dict[str, list[str]] = {}
        self._index: dict[str, pd.Index] | None = None  # the categories' hash tables, built on first use

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
            self._index = None
        return self

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("FeatureEncoder is not fitted: call fit() or load() first")

    @property
    def feature_names(self) -> list[str]:
        self._check_fitted()
        return [*self.numeric, *(f"{c}_{v}" for c, cats in self._categories.items() for v in cats)]

    @property
    def groups(self) -> list[ColumnGroup]:
        """The raw column behind each run of encoded columns, in order: a numeric column is one
        encoded column, a categorical one its one-hot block (what explanations sum per feature)."""
        self._check_fitted()
        spans = [ColumnGroup(c, slice(i, i + 1), categorical=False) for i, c in enumerate(self.numeric)]
        start = len(self.numeric)
        for col, cats in self._categories.items():
            spans.append(ColumnGroup(col, slice(start, start + len(cats)), categorical=True))
            start += len(cats)
        return spans

    @property
    def categories(self) -> dict[str, list[str]]:
        self._check_fitted()
        return dict(self._categories)

    def _codes(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each categorical column's category number per row; -1: a category unseen in fit."""
        if self._index is None:
            self._index = {c: pd.Index(cats) for c, cats in self._categories.items()}
        return {c: index.get_indexer(df[c].astype(str)) for c, index in self._index.items()}

    def unknown_categories(
        self, df: pd.DataFrame, codes: dict[str, np.ndarray] | None = None
    ) -> dict[str, dict[str, int]]:
        """Categories not seen in fit, with their row counts: they encode as all-zero one-hots.
        ``codes``: :meth:`_codes` of ``df``, where the caller has them."""
        self._check_fitted()
        found = {}
        for col, code in (codes if codes is not None else self._codes(df)).items():
            unseen = code < 0
            if unseen.any():
                counts = df[col][unseen].astype(str).value_counts()
                found[col] = {str(k): int(v) for k, v in counts.items()}
        return found

    def transform(
        self, df: pd.DataFrame, what: str = "data", report_unknown: bool = True, first: int = 0
    ) -> np.ndarray:
        """Encode rows; unseen categories become all-zero one-hots (logged), never an error.

        ``report_unknown=False``: the caller counts them itself (``unknown_categories``).
        ``first``: the row number of ``df``'s first row in ``what`` (a chunk of it), for faults.
        """
        self._check_fitted()
        frame = self._frame(df, what)
        codes = self._codes(frame)
        if report_unknown and (unknown := self.unknown_categories(frame, codes)):
            log.info("%s: categories unseen in training, encoded as all zeros: %s", what, unknown)
        parts = [(self._numeric(frame) * self._mul + self._add).astype(np.float32)]
        for col, cats in self._categories.items():
            code = codes[col]
            onehot = np.zeros((len(frame), len(cats)), np.float32)
            seen = code >= 0
            onehot[np.flatnonzero(seen), code[seen]] = 1.0
            parts.append(onehot)
        X = np.concatenate(parts, axis=1)
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = map(int, np.argwhere(bad)[0])
            raise DataError(
                f"{what}: row {first + r}, feature {self.feature_names[c]!r} encodes to {X[r, c]} "
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

    def summary(self) -> dict[str, Any]:
        """What it encodes, for a person (``kddad info``): the columns, scaling, log1p, encoded width."""
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "scaling": self.scaling,
            "log1p": self.log1p,
            "encoded": len(self.feature_names),
        }

    def save(self, path: str | Path) -> Path:
        """Write the encoder folder (one JSON file) atomically."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            write_json(tmp / _META, self.describe())
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureEncoder:
        """Load a saved encoder: plain JSON, every key and value checked (:class:`EncoderFile`).

        Refuses unknown keys, columns that are not KDD features, non-finite or absurd multipliers
        and offsets (bounds: :data:`MAX_MULTIPLIER`, :data:`MAX_OFFSET`), lengths that disagree
        with the column lists, duplicate or empty category lists; the error names the file and key.
        """
        file = Path(path) / _META
        what = "not a valid kddad encoder"
        meta = read_description(file, "a kddad encoder (encoder.json)", DataError)
        try:
            spec = EncoderFile.model_validate(meta)
        except ValidationError as err:
            numeric = meta.get("numeric")

            def column(loc: tuple) -> str:
                if (
                    len(loc) > 1
                    and loc[0] in ("multiplier", "offset")
                    and isinstance(loc[1], int)
                    and isinstance(numeric, list)
                    and loc[1] < len(numeric)
                    and isinstance(numeric[loc[1]], str)
                ):
                    return f" ({safe(numeric[loc[1]], 40)})"
                return ""

            raise DataError(invalid(err, file, EncoderFile, what, column)) from None
        enc = cls(spec.numeric, spec.categorical, spec.scaling, spec.log1p)
        enc._mul = np.asarray(spec.multiplier, dtype=np.float64)
        enc._add = np.asarray(spec.offset, dtype=np.float64)
        enc._categories = {c: list(spec.categories[c]) for c in enc.categorical}
        return enc
