"""Parse a KDD-format file (gzip or text) into typed columns with standard names and labels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kddad.data import schema
from kddad.errors import DataError

log = logging.getLogger(__name__)

_DTYPES = {c: ("float64" if c in schema.FLOAT_COLUMNS else "int64") for c in schema.NUMERIC}


def _diagnose(path: Path) -> str:
    """Find the first row that does not fit the layout (slow; runs only after a fast parse failed)."""
    from kddad.data.records import diagnose

    return diagnose(path, None, header=False)


def label_category(labels: pd.Series) -> pd.Series:
    """Map attack names to normal/dos/probe/r2l/u2r; unknown attack names become 'unknown'."""
    cats = labels.map(schema.ATTACK_CATEGORIES).astype("object")
    cats[labels == "normal"] = "normal"
    unknown = sorted(set(labels[cats.isna()]))
    if unknown:
        log.warning("labels with no known attack category (counted as 'unknown'): %s", unknown)
    return cats.fillna("unknown")


def read_kdd(path: str | Path, compression: str | None = "infer") -> pd.DataFrame:
    """Read a KDD Cup 99 (42 columns) or NSL-KDD (43 columns) file.

    Returns the 41 features under their KDD names, ``label`` (attack name, ``normal``, no
    trailing dot), NSL-KDD's ``difficulty`` when the file has it, ``category``, ``is_outlier``
    (0/1) and ``row`` (0-based line in the file). ``compression``: "gzip" or None where the
    file's name does not say (a download's temporary file); "infer" goes by the suffix.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, header=None, engine="pyarrow", compression=compression)
    except Exception as err:  # pyarrow's messages don't name our columns: find the row ourselves
        raise DataError(f"{path}: {_diagnose(path)} ({type(err).__name__})") from None
    if df.shape[1] not in (42, 43):
        raise DataError(f"{path}: expected 42 columns (41 features + label) or 43 (NSL-KDD), got {df.shape[1]}")
    df.columns = [*schema.FEATURES, schema.LABEL, schema.DIFFICULTY][: df.shape[1]]
    missing = df.isna().to_numpy()
    if missing.any():
        r, c = map(int, np.argwhere(missing)[0])
        raise DataError(f"{path}: line {r + 1}, column {df.columns[c]!r}: missing value")
    dtypes = {**_DTYPES, schema.DIFFICULTY: "int64"} if schema.DIFFICULTY in df else _DTYPES
    for col, dtype in dtypes.items():
        if df[col].dtype != dtype:
            if dtype == "float64" and pd.api.types.is_numeric_dtype(df[col]):
                df[col] = df[col].astype(dtype)
                continue
            raise DataError(f"{path}: {_diagnose(path)}")
        bad = df[col] < 0
        if dtype == "float64":
            bad |= df[col] > 1
        if bad.any():
            first = int(np.argmax(bad.to_numpy()))
            expected = "a rate in [0, 1]" if dtype == "float64" else "a non-negative count"
            raise DataError(f"{path}: line {first + 1}, column {col!r}: expected {expected}, got {df[col].iloc[first]}")
    for col in (*schema.CATEGORICAL, schema.LABEL):
        if pd.api.types.infer_dtype(df[col]) in ("bytes", "mixed"):  # pyarrow hands non-UTF-8 text as bytes
            raise DataError(f"{path}: {_diagnose(path)}")
        df[col] = df[col].astype(str)
    df[schema.LABEL] = df[schema.LABEL].str.rstrip(".")
    df[schema.CATEGORY] = label_category(df[schema.LABEL])
    df[schema.IS_OUTLIER] = (df[schema.LABEL] != "normal").astype("int8")
    df[schema.ROW] = np.arange(len(df), dtype="int64")
    log.info("%s: %d rows, %d normal", path, len(df), int((df[schema.IS_OUTLIER] == 0).sum()))
    return df


def records_sha256(path: str | Path, compression: str | None = "infer") -> str:
    """sha256 of a KDD file's parsed records: its values, whatever their spelling (``0.00`` or ``0.0``).

    The numbers as little-endian float64 in file order, then the text columns; what a byte
    checksum cannot do for copies of one data set written with other number formats.
    """
    import hashlib

    df = read_kdd(path, compression)
    numeric = [c for c in (*schema.NUMERIC, schema.DIFFICULTY) if c in df]
    digest = hashlib.sha256(df[numeric].to_numpy(dtype="<f8").tobytes())
    for col in (*schema.CATEGORICAL, schema.LABEL):
        digest.update("\n".join(df[col]).encode())
    return digest.hexdigest()
