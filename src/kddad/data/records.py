"""The one reader of KDD records, for training and for scoring, from files found in the wild.

It recognises the layout: the distributed files (42 or 43 columns, no header), unlabelled
records (41), a header row naming the columns in any order (the KDD names or a variant found in
public copies: ``src_byts``, ``attack``, ``level``…) or, where a header of a KDD width has names
that mostly match in their places (``srv_error_rate``, OpenML's ``lnum_compromised``), by
position with one warning; a leading index column (pandas ``to_csv``), a byte-order mark, CRLF
line ends, quoting, whitespace around fields, labels with or without their trailing dot;
``.csv``/``.txt``, gzipped or not (recognised by content), and ``.parquet``. Files are streamed
in chunks (pyarrow) so a file of millions of rows never sits in memory whole; range checks and the
label → category mapping are written once, here. A fault names the file, line and column; no
torch here.
"""

from __future__ import annotations

import csv
import gzip
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kddad.data import fields
from kddad.data.columns import KNOWN, TAILS, canonical, ignored, kdd_columns
from kddad.errors import DataError

log = logging.getLogger(__name__)

DIFFICULTY = fields.DIFFICULTY
#: Parsed as numbers, counts too: a count written ``491.0`` (a file that passed through a
#: dataframe with a missing value) is that count; :func:`check_values` refuses ``0.5``.
_TYPES: dict[str, pa.DataType] = {
    **dict.fromkeys((*fields.NUMERIC, DIFFICULTY), pa.float64()),
    **dict.fromkeys(fields.CATEGORICAL, pa.string()),
    fields.LABEL: pa.string(),
}
#: The whole-number columns, held as int64 once checked.
COUNTS = (*(c for c in fields.NUMERIC if c not in fields.FLOAT_COLUMNS), DIFFICULTY)
#: Whole numbers up to this are exact as the float64 they are parsed to.
MAX_COUNT = 2**53
SUFFIXES = (".csv", ".txt", ".gz", ".parquet")
#: Bytes of text a chunk of records takes, about: a text file is read in blocks of this times the chunk's rows.
ROW_BYTES = 84
#: Blocks of a file read whole, each parsed on a core of its own.
WHOLE_BLOCK_BYTES = 8 << 20
_TEXT = (*fields.CATEGORICAL, fields.LABEL)
CHECK_ROWS = 1 << 16  # rows whose numeric values check_values turns into one float block


def label_category(labels: pd.Series) -> pd.Series:
    """Map attack names to normal/dos/probe/r2l/u2r; a name of no known attack becomes 'unknown'."""
    cats = labels.map(fields.ATTACK_CATEGORIES).astype("object")
    cats[labels == "normal"] = "normal"
    return cats.fillna("unknown")


@dataclass(frozen=True)
class Layout:
    """What a file holds: its columns in file order (KDD names; ``_ignored_<i>`` for others),
    whether a header row names them, and its format: ``text``, ``gzip`` (text) or ``parquet``."""

    path: Path
    columns: tuple[str, ...]
    header: bool
    format: str = "text"

    @property
    def labelled(self) -> bool:
        return fields.LABEL in self.columns

    @property
    def used(self) -> list[str]:
        return [c for c in self.columns if c in KNOWN]


def _is_gzip(path: Path) -> bool:
    """By content, not name: a download's temporary file, or a ``.txt`` that is gzipped."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open_text(path: Path, gzipped: bool):
    opener = gzip.open if gzipped else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _first_row(path: Path, gzipped: bool) -> list[str] | None:
    try:
        with _open_text(path, gzipped) as f:
            line = f.readline()
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(f"{path}: {diagnose(path, None, False)}") from None
    return next(csv.reader([line], skipinitialspace=True), None) if line.strip() else None


def _headerless(path: Path, width: int) -> tuple[str, ...]:
    if width not in TAILS:
        raise DataError(
            f"{path}: line 1: expected 41 comma-separated fields (unlabelled records), 42 (KDD Cup 99: + label) "
            f"or 43 (NSL-KDD: + label, difficulty), got {width}; a header row needs the KDD column names"
        )
    return (*fields.FEATURES, *TAILS[width])


def layout(path: str | Path, name: str | None = None) -> Layout:
    """Recognise a file's columns: a header row if most of its first row are KDD column names.

    ``name``: what the file is called, where its own name says nothing (a download's temporary file).
    """
    path = Path(path)
    suffix = Path(name or path.name).suffix
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (pa.ArrowInvalid, OSError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise DataError(f"{path}: not a readable Parquet file ({err})") from None
        return Layout(
            path, kdd_columns(names, f"{path}: Parquet columns", by_position=False), header=True, format="parquet"
        )
    gzipped = _is_gzip(path)
    first = _first_row(path, gzipped)
    if first is None:
        raise DataError(f"{path}: the file is empty; expected KDD records (41 features, optionally label)")
    named = sum(canonical(v) in KNOWN for v in first)
    kind = "gzip" if gzipped else "text"
    if named >= len(fields.FEATURES) // 2:
        return Layout(path, kdd_columns(first, f"{path}: line 1 (header)"), header=True, format=kind)
    return Layout(path, _headerless(path, len(first)), header=False, format=kind)


def _fields(width: int | None) -> str:
    what = {41: "41 features", 42: "41 features + label", 43: "41 features + label, + difficulty"}
    return f"{width or 42} comma-separated fields ({what.get(width or 42)})"


def diagnose(path: Path, columns: tuple[str, ...] | None, header: bool) -> str:
    """The first line that does not fit ``columns`` (None: 42 or 43 KDD columns, as the first
    line has), and why. Slow: runs only after a fast parse failed."""
    width = len(columns) if columns is not None else None
    names = columns or (*fields.FEATURES, fields.LABEL, DIFFICULTY)
    lineno = 0
    try:
        with gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
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
                row = next(csv.reader([line], skipinitialspace=True), [])
                if width is None and len(row) in (42, 43):
                    width = len(row)
                if len(row) != width:
                    return f"line {lineno}: expected {_fields(width)}, got {len(row)}"
                for col, value in zip(names, row):
                    if _TYPES.get(col) != pa.float64():
                        continue
                    try:
                        float(value)
                    except ValueError:
                        expected = "an integer" if col in COUNTS else "a number"
                        return f"line {lineno}, column {col!r}: expected {expected}, got {value!r}"
    except (EOFError, OSError, zlib.error) as err:  # a truncated or corrupt gzip stream
        return f"line {lineno + 1}: the file ends early or is corrupt ({err})"
    if lineno == 0:
        return "the file is empty; expected KDD records (41 features, optionally label)"
    return "the file could not be parsed, but no single bad row was found"


def _shown(value: float) -> str:
    """A value as a fault shows it: a whole number without its ``.0``."""
    return str(int(value)) if float(value).is_integer() and abs(value) < MAX_COUNT else str(value)


def check_values(df: pd.DataFrame, where: str, first_line: int, unit: str = "line") -> None:
    """Refuse missing values, negative or fractional counts and rates outside [0, 1], naming the
    line (``unit``: what a position is called: a file's ``line``, a request's ``row``)."""
    cols = [c for c in df.columns if c in _TYPES]
    missing = df[cols].isna().to_numpy()
    for j, col in enumerate(cols):
        if col in _TEXT:  # an empty text field ("" after trimming) is as missing as an empty number
            missing[:, j] |= (df[col] == "").to_numpy()
    if missing.any():
        r, c = map(int, np.argwhere(missing)[0])
        raise DataError(f"{where}: {unit} {first_line + r}, column {cols[c]!r}: missing value")
    numbers = [c for c in cols if _TYPES[c] == pa.float64()]
    rate = np.array([c in fields.FLOAT_COLUMNS for c in numbers])
    # counts still held as floats (int64 ones are whole already): those that may hold a fraction
    kinds = df.dtypes
    fractional = np.array([not r and kinds[c].kind == "f" for c, r in zip(numbers, rate)])
    first = np.full(len(numbers), -1)  # each column's first row at fault
    block = df[numbers]
    for start in range(0, len(df), CHECK_ROWS):  # a block at a time: one check per block, not per column
        values = block.iloc[start : start + CHECK_ROWS].to_numpy(np.float64)
        bad = (values < 0) | ((values > 1) & rate) | (values >= MAX_COUNT)
        if fractional.any():
            counts = values[:, fractional]
            bad[:, fractional] |= counts != np.floor(counts)
        hit = bad.any(0) & (first < 0)
        first[hit] = start + bad[:, hit].argmax(0)
    if (first >= 0).any():
        c = int(np.argmax(first >= 0))  # the first column at fault, then its first row
        r, col = int(first[c]), numbers[c]
        value = float(df[col].to_numpy()[r])
        if rate[c]:
            expected = "a rate in [0, 1]"
        else:
            expected = (
                "a non-negative count" if value < 0 else "an integer" if value < MAX_COUNT else "a count below 2**53"
            )
        raise DataError(f"{where}: {unit} {first_line + r}, column {col!r}: expected {expected}, got {_shown(value)}")


def as_counts(df: pd.DataFrame) -> pd.DataFrame:
    """The count columns as int64 (after :func:`check_values`: whole numbers, each exact)."""
    cast = {c: "int64" for c in COUNTS if c in df.columns and df[c].dtype != "int64"}
    return df.astype(cast) if cast else df


def _whole_counts(data: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """The count columns cast to int64 where every value is a whole number in range (Arrow's safe
    cast: at C speed); where one is not, left as they are for :func:`check_values` to name."""
    for col in COUNTS:
        i = data.schema.get_field_index(col)
        if i < 0 or data.schema.field(i).type == pa.int64():
            continue
        try:
            data = data.set_column(i, col, data.column(i).cast(pa.int64()))
        except pa.ArrowInvalid:
            return data
    return data


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``category`` and ``is_outlier`` beside a ``label`` column (trailing dots dropped)."""
    codes, names = pd.factorize(df[fields.LABEL].astype(str))  # a file holds a few dozen labels: work on those
    names = pd.Series(names).astype(str).str.rstrip(".")

    def per_row(values: pd.Series) -> pd.Series:
        return values.iloc[codes].set_axis(df.index)

    df[fields.LABEL] = per_row(names)
    df[fields.CATEGORY] = per_row(label_category(names))
    df[fields.IS_OUTLIER] = per_row((names != "normal").astype("int8"))
    return df


def _csv_batches(lay: Layout, chunk_rows: int, whole: bool = False) -> Iterator[pa.RecordBatch]:
    """Streamed in blocks; ``whole``: parsed at once on every core (what training reads)."""
    from pyarrow import csv as pacsv

    names = [c if c in KNOWN else ignored(i) for i, c in enumerate(lay.columns)]
    block = WHOLE_BLOCK_BYTES if whole else max(1 << 14, chunk_rows * ROW_BYTES)
    stream = pa.input_stream(str(lay.path), compression="gzip" if lay.format == "gzip" else None)
    options = {
        "read_options": pacsv.ReadOptions(column_names=names, skip_rows=int(lay.header), block_size=block),
        "convert_options": pacsv.ConvertOptions(
            column_types={c: _TYPES[c] for c in lay.used}, include_columns=lay.used, strings_can_be_null=False
        ),
    }
    if whole:
        yield from pacsv.read_csv(stream, **options).to_batches()
    else:
        yield from pacsv.open_csv(stream, **options)


def _parquet_batches(lay: Layout, rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    f = pq.ParquetFile(lay.path)
    names = f.schema_arrow.names
    wanted = [n for n in names if canonical(n) in KNOWN]
    for batch in f.iter_batches(batch_size=rows, columns=wanted):
        arrays = []
        for name in wanted:
            col = canonical(name)
            try:
                arrays.append(batch.column(name).cast(_TYPES[col]))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise DataError(f"{lay.path}: column {name!r}: expected {_TYPES[col]} values ({err})") from None
        yield pa.RecordBatch.from_arrays(arrays, names=[canonical(n) for n in wanted])


def _batches(lay: Layout, chunk_rows: int, whole: bool = False) -> Iterator[pa.RecordBatch]:
    """The file's record batches under KDD names, text fields trimmed; faults as DataError."""
    batches = _parquet_batches(lay, chunk_rows) if lay.format == "parquet" else _csv_batches(lay, chunk_rows, whole)
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
        for col in _TEXT:  # " tcp" from a file written with a space after each comma
            if col in batch.schema.names:
                i = batch.schema.get_field_index(col)
                batch = batch.set_column(i, col, pc.utf8_trim_whitespace(batch.column(i)))
        yield batch


def frame(data: pa.RecordBatch | pa.Table, lay: Layout, line: int, check: bool = True) -> pd.DataFrame:
    """Records as the reader hands them, checked; ``line``: the file line of the first one.
    ``check=False``: values already checked (a file read a second time)."""
    df = _whole_counts(data).to_pandas()
    df = df[[c for c in (*fields.FEATURES, fields.LABEL, DIFFICULTY) if c in df.columns]]
    if check:
        check_values(df, str(lay.path), line)
    df = as_counts(df)
    if lay.labelled:
        df = labelled(df)
    first = line - 1 - int(lay.header)
    df.index = pd.RangeIndex(first, first + len(df))
    return df


def iter_records(
    path: str | Path | Layout, chunk_rows: int = 100_000, name: str | None = None
) -> tuple[Layout, Iterator[pd.DataFrame]]:
    """The file's layout and its rows in chunks: the 41 features under their KDD names, then
    ``label``, ``category``, ``is_outlier`` when labelled, and ``difficulty`` when present; the
    index is the 0-based record number.

    Errors (wrong width, text in a numeric column, a truncated gzip, a missing value) are raised
    as :class:`~kddad.errors.DataError` naming the file, line and column, when the chunk that
    holds them is reached.
    """
    lay, batches = iter_batches(path, chunk_rows, name)
    return lay, (frame(batch, lay, line) for line, batch in batches)


def iter_batches(
    path: str | Path | Layout, chunk_rows: int = 100_000, name: str | None = None
) -> tuple[Layout, Iterator[tuple[int, pa.RecordBatch]]]:
    """What :func:`iter_records` reads, before :func:`frame` checks it: each chunk as an Arrow
    batch with the file line of its first record, for a caller that checks chunks elsewhere (a
    worker process): parsing faults are raised here, value faults by :func:`frame`. ``path``
    may be a :class:`Layout` already recognised (a file read a second time)."""
    lay = path if isinstance(path, Layout) else layout(path, name)

    def chunks() -> Iterator[tuple[int, pa.RecordBatch]]:
        line = 1 + int(lay.header)
        for batch in _batches(lay, chunk_rows):
            yield line, batch
            line += batch.num_rows

    return lay, chunks()


def read_records(path: str | Path, name: str | None = None) -> tuple[Layout, pd.DataFrame]:
    """The whole file at once (what training needs), through the same reader as :func:`iter_records`."""
    lay = layout(path, name)
    batches = list(_batches(lay, 1 << 20, whole=True))
    if not batches:
        raise DataError(f"{lay.path}: holds no records (a header and nothing else)")
    return lay, frame(pa.Table.from_batches(batches), lay, 1 + int(lay.header))
