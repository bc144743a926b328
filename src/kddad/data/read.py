"""A whole labelled KDD file as one frame, for the data stages; read by :mod:`kddad.data.records`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kddad.data import fields
from kddad.data.audit import Audit
from kddad.data.records import Layout, read_records
from kddad.errors import DataError

log = logging.getLogger(__name__)

#: How a user goes on past :mod:`kddad.data.audit`'s check in the pipeline.
ALLOW_HINT = "set dataset.allow_unknown=true to train on it anyway"


def require_labels(lay: Layout) -> None:
    """Refuse a file of unlabelled records where training and evaluation need labels."""
    if not lay.labelled:
        raise DataError(
            f"{lay.path}: no label column (41 fields a row); training and evaluation need labelled records: "
            "41 features + label (KDD Cup 99), optionally + difficulty (NSL-KDD)"
        )


def read_kdd(path: str | Path, name: str | None = None, allow_unknown: bool = False) -> pd.DataFrame:
    """Read a labelled KDD file in any layout the reader knows (KDD Cup 99's 42 columns, NSL-KDD's
    43, a header row…).

    Returns the 41 features under their KDD names, ``label`` (attack name, ``normal``, no
    trailing dot), NSL-KDD's ``difficulty`` when the file has it, ``category``, ``is_outlier``
    (0/1) and ``row`` (0-based record number). ``name``: what the file is called where its own
    name says nothing (a download's temporary file). A file with no ``normal`` row, or whose
    labels mostly name no known attack, is refused unless ``allow_unknown``.
    """
    lay, df = read_records(path, name)
    require_labels(lay)
    audit = Audit(str(path))
    audit.add(df)
    audit.check(allow_unknown, ALLOW_HINT)
    df = df.reset_index(drop=True)
    df[fields.ROW] = np.arange(len(df), dtype="int64")
    log.info("%s: %d rows, %d normal; %s", path, len(df), audit.normal_rows, audit.summary())
    return df


def records_sha256(path: str | Path, name: str | None = None) -> str:
    """sha256 of a KDD file's parsed records: its values, whatever their spelling (``0.00`` or ``0.0``).

    The numbers as little-endian float64 in file order, then the text columns; what a byte
    checksum cannot do for copies of one data set written with other number formats.
    """
    import hashlib

    df = read_kdd(path, name, allow_unknown=True)
    numeric = [c for c in (*fields.NUMERIC, fields.DIFFICULTY) if c in df]
    digest = hashlib.sha256(df[numeric].to_numpy(dtype="<f8").tobytes())
    for col in (*fields.CATEGORICAL, fields.LABEL):
        digest.update("\n".join(df[col]).encode())
    return digest.hexdigest()
