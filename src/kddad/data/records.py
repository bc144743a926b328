"""Read connection records to score, from files found in the wild, in bounded memory.

What :func:`kddad.data.read.read_kdd` reads (the distributed files: 42 or 43 columns, no header)
and more: unlabelled records (41 columns), a header row (the KDD names, or a variant found in
public copies: ``src_byts``, ``attack``, ``level``…), ``.csv``/``.txt`` (optionally ``.gz``) and
``.parquet``. Files are streamed in chunks (pyarrow), so a file of millions of rows never sits in
memory whole. A fault names the file, line and column; no torch here.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from kddad.data import schema
from kddad.errors import DataError

log = logging.getLogger(__name__)

DIFFICULTY = schema.DIFFICULTY
#: Header names seen in public copies of KDD Cup 99 / NSL-KDD, and what they mean.
ALIASES: dict[str, str] = {
    "src_byts": "src_bytes",
    "dst_byts": "dst_bytes",
    "protocol": "protocol_type",
    "is_hot_login": "is_host_login",
    "num_outbound_cmd": "num_outbound_cmds",
    "su_attempt": "su_attempted",
    "attack": schema.LABEL,
    "attack_type": schema.LABEL,
    "attack_cat": schema.LABEL,
    "class": schema.LABEL,
    "labels": schema.LABEL,
    "outcome": schema.LABEL,
    "target": schema.LABEL,
    "level": DIFFICULTY,
    "difficulty_level": DIFFICULTY,
    "success_pred": DIFFICULTY,
}
_KNOWN = {*schema.FEATURES, schema.LABEL, DIFFICULTY}
_INT = pa.int64()
_TYPES: dict[str, pa.DataType] = {
    **{c: (pa.float64() if c in schema.FLOAT_COLUMNS else _INT) for c in schema.NUMERIC},
    **dict.fromkeys(schema.CATEGORICAL, pa.string()),
    schema.LABEL: pa.string(),
    DIFFICULTY: _INT,
}
SUFFIXES = (".csv", ".txt", ".gz", ".parquet")
BLOCK_BYTES = 8 << 20  # about 80,000 rows a chunk


def canonical(name: str) -> str:
    """A header name as the KDD name it stands for (case, spaces, dashes and aliases folded)."""
    key = re.sub(r"[\s\-]+", "_", name.strip().strip("'\"").rstrip(".:").lower())
    return ALIASES.get(key, key)


@dataclass(frozen=True)
class Layout:
    """What a file holds: its columns in file order (KDD names), and whether a header row names them."""

    path: Path
    columns: tuple[str, ...]
    header: bool

    @property
    def labelled(self) -> bool:
        return schema.LABEL in self.columns

    @property
    def used(self) -> list[str]:
        return [c for c in self.columns if c in _KNOWN]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8", newline="") if path.suffix == ".gz" else open(path, newline="")


def _first_row(path: Path) -> list[str] | None:
    try:
        with _open_text(path) as f:
            line = f.readline()
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(f"{path}: {diagnose(path, None, False)}") from None
    return next(csv.reader([line]), None) if line.strip() else None


def _headerless(path: Path, width: int) -> tuple[str, ...]:
    tails = {41: (), 42: (schema.LABEL,), 43: (schema.LABEL, DIFFICULTY)}
    if width not in tails:
        raise DataError(
            f"{path}: line 1: expected 41 comma-separated fields (unlabelled records), 42 (KDD Cup 99: + label) "
            f"or 43 (NSL-KDD: + label, difficulty), got {width}; a header row needs the KDD column names"
        )
    return (*schema.FEATURES, *tails[width])


def _from_names(path: Path, names: list[str], where: str) -> tuple[str, ...]:
    columns = tuple(canonical(n) for n in names)
    missing = [c for c in schema.FEATURES if c not in columns]
    if missing:
        raise DataError(f"{path}: {where}: the 41 KDD features are needed; missing {missing}")
    dup = sorted({c for c in columns if c in _KNOWN and columns.count(c) > 1})
    if dup:
        raise DataError(f"{path}: {where}: column(s) {dup} appear more than once")
    extra = [n for n, c in zip(names, columns) if c not in _KNOWN]
    if extra:
        log.info("%s: ignoring column(s) that are not KDD features: %s", path, extra)
    return columns


def layout(path: str | Path) -> Layout:
    """Recognise a file's columns: a header row if most of its first row are KDD column names."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (pa.ArrowInvalid, OSError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise DataError(f"{path}: not a readable Parquet file ({err})") from None
        return Layout(path, _from_names(path, names, "Parquet columns"), header=True)
    first = _first_row(path)
    if first is None:
        raise DataError(f"{path}: the file is empty; expected KDD records (41 features, optionally label)")
    named = sum(canonical(v) in _KNOWN for v in first)
    if named >= len(schema.FEATURES) // 2:
        return Layout(path, _from_names(path, first, "line 1 (header)"), header=True)
    return Layout(path, _headerless(path, len(first)), header=False)


def _fields(width: int | None) -> str:
    what = {41: "41 features", 42: "41 features + label", 43: "41 features + label, + difficulty"}
    return f"{width or 42} comma-separated fields ({what.get(width or 42)})"


def diagnose(path: Path, columns: tuple[str, ...] | None, header: bool) -> str:
    """The first line that does not fit ``columns`` (None: 42 or 43 KDD columns, as the first
    line has), and why. Slow: runs only after a fast parse failed."""
    width = len(columns) if columns is not None else None
    names = columns or (*schema.FEATURES, schema.LABEL, DIFFICULTY)
    lineno = 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    col = names[min(raw[: err.start].count(b","), len(names) - 1)]
                    return (
                        f"line {lineno}, column {col!r}: byte {raw[err.start]:#04x} is not UTF-8 text; "
                        "expected ASCII KDD records"
                    )
                if header and lineno == 1:
                    continue
                row = next(csv.reader([line]), [])
                if width is None and len(row) in (42, 43):
                    width = len(row)
                if len(row) != width:
                    return f"line {lineno}: expected {_fields(width)}, got {len(row)}"
                for col, value in zip(names, row):
                    kind = _TYPES.get(col) if col != schema.LABEL else None
                    if kind is None or kind == pa.string():
                        continue
                    try:
                        float(value) if kind == pa.float64() else int(value)
                    except ValueError:
                        expected = "a number" if kind == pa.float64() else "an integer"
                        return f"line {lineno}, column {col!r}: expected {expected}, got {value!r}"
    except (EOFError, OSError, zlib.error) as err:  # a truncated or corrupt gzip stream
        return f"line {lineno + 1}: the file ends early or is corrupt ({err})"
    if lineno == 0:
        return "the file is empty; expected KDD records (41 features, optionally label)"
    return "the file could not be parsed, but no single bad row was found"


def check_values(df: pd.DataFrame, where: str, first_line: int) -> None:
    """Refuse missing values, negative counts and rates outside [0, 1], naming the line."""
    cols = [c for c in df.columns if c in _TYPES]
    missing = df[cols].isna().to_numpy()
    if missing.any():
        r, c = map(int, np.argwhere(missing)[0])
        raise DataError(f"{where}: line {first_line + r}, column {cols[c]!r}: missing value")
    for col in schema.NUMERIC:
        values = df[col].to_numpy()
        bad = values < 0
        if col in schema.FLOAT_COLUMNS:
            bad |= values > 1
        if bad.any():
            r = int(np.argmax(bad))
            expected = "a rate in [0, 1]" if col in schema.FLOAT_COLUMNS else "a non-negative count"
            raise DataError(f"{where}: line {first_line + r}, column {col!r}: expected {expected}, got {values[r]}")


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``category`` and ``is_outlier`` beside a ``label`` column (trailing dots dropped)."""
    from kddad.data.read import label_category

    df[schema.LABEL] = df[schema.LABEL].astype(str).str.rstrip(".")
    df[schema.CATEGORY] = label_category(df[schema.LABEL])
    df[schema.IS_OUTLIER] = (df[schema.LABEL] != "normal").astype("int8")
    return df


def _csv_batches(lay: Layout) -> Iterator[pa.RecordBatch]:
    from pyarrow import csv as pacsv

    names = [c if c in _KNOWN else f"_ignored_{i}" for i, c in enumerate(lay.columns)]
    stream = pa.input_stream(str(lay.path), compression="gzip" if lay.path.suffix == ".gz" else None)
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=int(lay.header), block_size=BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            column_types={c: _TYPES[c] for c in lay.used}, include_columns=lay.used, strings_can_be_null=False
        ),
    )
    yield from reader


def _parquet_batches(lay: Layout, rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    f = pq.ParquetFile(lay.path)
    names = f.schema_arrow.names
    wanted = [n for n in names if canonical(n) in _KNOWN]
    for batch in f.iter_batches(batch_size=rows, columns=wanted):
        arrays = []
        for name in wanted:
            col = canonical(name)
            try:
                arrays.append(batch.column(name).cast(_TYPES[col]))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise DataError(f"{lay.path}: column {name!r}: expected {_TYPES[col]} values ({err})") from None
        yield pa.RecordBatch.from_arrays(arrays, names=[canonical(n) for n in wanted])


def iter_records(path: str | Path, chunk_rows: int = 100_000) -> tuple[Layout, Iterator[pd.DataFrame]]:
    """The file's layout and its rows in chunks: the 41 features under their KDD names, then
    ``label``, ``category``, ``is_outlier`` when labelled, and ``difficulty`` when present.

    Errors (wrong width, text in a numeric column, a truncated gzip, a missing value) are raised
    as :class:`~kddad.errors.DataError` naming the file, line and column, when the chunk that
    holds them is reached.
    """
    lay = layout(path)

    def chunks() -> Iterator[pd.DataFrame]:
        line = 1 + int(lay.header)
        batches = _parquet_batches(lay, chunk_rows) if lay.path.suffix == ".parquet" else _csv_batches(lay)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as err:
                if isinstance(err, FileNotFoundError):
                    raise
                raise DataError(f"{lay.path}: {diagnose(lay.path, lay.columns, lay.header)}") from None
            if batch.num_rows == 0:
                continue
            df = batch.to_pandas()
            df = df[[c for c in (*schema.FEATURES, schema.LABEL, DIFFICULTY) if c in df.columns]]
            check_values(df, str(lay.path), line)
            if lay.labelled:
                df = labelled(df)
            df.index = pd.RangeIndex(line - 1 - int(lay.header), line - 1 - int(lay.header) + len(df))
            line += len(df)
            yield df

    return lay, chunks()
