"""The split of a file too big to hold: decided from one pass over it, written as it is read again.

The first pass keeps what the split is decided on (:class:`~kddad.data.split.Rows`: keys and
labels, 19 bytes a row) and the file's audit; the second parses the file again and appends each
chunk's rows to the Parquet file of every split that takes them. Memory is a chunk's worth of
rows, a row group per split and those keys, not the file; the files and report are those
:func:`kddad.data.split.split` gives for the whole file read at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kddad.config import SplitConfig
from kddad.data import fields
from kddad.data.audit import Audit
from kddad.data.read import ALLOW_HINT, require_labels
from kddad.data.records import Layout, frame, iter_batches, layout
from kddad.data.split import Plan, Rows, plan, report
from kddad.errors import DataError

log = logging.getLogger(__name__)

#: Rows parsed at a time in each pass: Arrow's streaming reader holds many times its text block.
CHUNK_ROWS = 1 << 15
#: Rows in each Parquet row group written (and read back a group at a time by the encode stage).
ROW_GROUP_ROWS = 1 << 16


def _chunks(
    lay: Layout, chunk_rows: int | None, progress: bool | None, desc: str, checked: bool = False
) -> Iterator[pd.DataFrame]:
    """The file's parsed chunks, values checked unless ``checked`` already, with the ``row``
    column (the 0-based record number); ``progress`` None: a bar where stderr is a terminal."""
    from tqdm.auto import tqdm

    _, batches = iter_batches(lay, chunk_rows or CHUNK_ROWS)
    with tqdm(
        unit=" rows", unit_scale=True, desc=desc, disable=None if progress is None else not progress, leave=False
    ) as bar:
        for line, batch in batches:
            df = frame(batch, lay, line, check=not checked)
            df[fields.ROW] = df.index.to_numpy(dtype="int64")
            bar.update(len(df))
            yield df


def scan(
    path: Path,
    cfg: SplitConfig,
    allow_unknown: bool,
    rows: int | None = None,
    key: str = "dataset.rows",
    chunk_rows: int | None = None,
    progress: bool | None = None,
) -> tuple[Layout, Rows]:
    """The first pass: the file's layout, every row's keys and labels, the file audited
    (:mod:`kddad.data.audit`) and its row count checked against ``rows`` (the config key ``key``)."""
    lay = layout(path)
    require_labels(lay)
    audit = Audit(str(path))
    parts = []
    for df in _chunks(lay, chunk_rows, progress, f"scan {path.name}"):
        audit.add(df)
        parts.append(Rows.of(df, cfg))
    if not parts:
        raise DataError(f"{path}: holds no records (a header and nothing else)")
    audit.check(allow_unknown, ALLOW_HINT)
    found = Rows.concat(parts)
    log.info("%s: %d rows, %d normal; %s", path, len(found), audit.normal_rows, audit.summary())
    if rows is not None and len(found) != rows:
        raise DataError(f"{path}: expected {rows} rows ({key}), got {len(found)}")
    return lay, found


class _Out:
    """One split's Parquet file, appended to a row group at a time (or, for a split that repeats
    or reorders rows, gathered and written at the end)."""

    def __init__(self, path: Path, idx: np.ndarray, streamed: bool) -> None:
        self.path, self.idx, self.streamed = path, idx, streamed
        self.wanted = idx if streamed else np.unique(idx)  # sorted: found by bisection in each chunk
        self.held: list[pd.DataFrame] = []
        self.held_rows = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, df: pd.DataFrame, schema: pa.Schema) -> None:
        first = int(df.index[0])
        lo, hi = np.searchsorted(self.wanted, [first, first + len(df)])
        if hi > lo:
            self.held.append(df.iloc[self.wanted[lo:hi] - first])
            self.held_rows += hi - lo
        if self.streamed and self.held_rows >= ROW_GROUP_ROWS:
            self._flush(schema)

    def _flush(self, schema: pa.Schema) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, schema)
        if self.held:
            self.writer.write_table(pa.Table.from_pandas(pd.concat(self.held), schema=schema, preserve_index=False))
        self.held, self.held_rows = [], 0

    def close(self, schema: pa.Schema) -> None:
        if self.streamed:
            self._flush(schema)
            self.writer.close()
            return
        held = pd.concat(self.held) if self.held else pd.DataFrame(columns=schema.names)
        out = held.iloc[np.searchsorted(self.wanted, self.idx)]
        pq.write_table(pa.Table.from_pandas(out, schema=schema, preserve_index=False), self.path)


def write(
    lay: Layout,
    p: Plan,
    names: list[str],
    files: dict[str, Path],
    relabel: np.ndarray | None = None,
    chunk_rows: int | None = None,
    progress: bool | None = None,
) -> None:
    """The second pass over the file: each split of ``names`` to its file of ``files``;
    ``relabel``: the ``is_outlier`` each row is written with (protocol dagmm)."""
    outs = {name: _Out(files[name], p.idx[name], p.in_file_order(name)) for name in names}
    schema = None
    for df in _chunks(lay, chunk_rows, progress, f"split {lay.path.name}", checked=True):
        if relabel is not None:
            df[fields.IS_OUTLIER] = relabel[int(df.index[0]) : int(df.index[0]) + len(df)]
        if schema is None:
            schema = pa.Schema.from_pandas(df, preserve_index=False)
        for out in outs.values():
            out.add(df, schema)
    for out in outs.values():
        out.close(schema)


def read_chunks(path: Path) -> Iterator[pd.DataFrame]:
    """A split file written here, a row group at a time (what the later stages read of a big split)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS):
        yield batch.to_pandas()


def split_files(
    main: Path,
    cfg: SplitConfig,
    files: dict[str, Path],
    test: Path | None = None,
    allow_unknown: bool = False,
    rows: int | None = None,
    test_rows: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Split file ``main`` (and, for protocol ``test_file``, the test file ``test``) per ``cfg``
    into ``files`` (a Parquet path for each split name); returns the report."""
    lay, found = scan(main, cfg, allow_unknown, rows, progress=progress)
    test_lay, found_test = (
        (None, None)
        if test is None
        else scan(test, cfg, allow_unknown, test_rows, "dataset.test.rows", progress=progress)
    )
    p = plan(found, cfg, found_test)
    result = report(found, p, cfg, found_test)
    relabel = p.outlier if cfg.protocol == "dagmm" else None
    write(lay, p, [n for n in p.idx if n not in p.from_test], files, relabel, progress=progress)
    if test_lay is not None:
        write(test_lay, p, [n for n in p.idx if n in p.from_test], files, progress=progress)
    return result
