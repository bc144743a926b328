"""Reading records to score: layouts found in the wild, chunked, with faults named by line and column."""

from __future__ import annotations

import gzip
import re

import pandas as pd
import pytest
from helpers.data import KDD10

from kddad.data import fields
from kddad.data.columns import canonical
from kddad.data.read import read_kdd
from kddad.data.records import DIFFICULTY, iter_records, layout
from kddad.errors import DataError


def _all(path, **kw) -> pd.DataFrame:
    lay, chunks = iter_records(path, **kw)
    return pd.concat(list(chunks))


def test_headerless_files_of_41_42_and_43_columns(mirror, tmp_path):
    nsl = _all(mirror / "KDDTest+.txt")
    ref = read_kdd(mirror / "KDDTest+.txt")
    pd.testing.assert_frame_equal(nsl[list(fields.FEATURES)].reset_index(drop=True), ref[list(fields.FEATURES)])
    assert (nsl[fields.LABEL].to_numpy() == ref[fields.LABEL].to_numpy()).all()
    assert nsl[DIFFICULTY].between(0, 21).all() and list(nsl.index) == list(range(len(ref)))
    unlabelled = tmp_path / "u.csv"
    pd.read_csv(mirror / "KDDTest+.txt", header=None).iloc[:100, :41].to_csv(unlabelled, header=False, index=False)
    lay = layout(unlabelled)
    assert not lay.header and not lay.labelled and len(lay.columns) == 41
    assert fields.LABEL not in _all(unlabelled).columns


def test_a_header_with_public_variants_in_any_order(mirror, tmp_path):
    raw = pd.read_csv(mirror / "KDDTest+.txt", header=None).head(500)
    raw.columns = [*(n.upper() if n == "service" else n for n in fields.FEATURES), "attack", "level"]
    raw = raw.rename(columns={"src_bytes": "src_byts", "is_host_login": "is_hot_login"})
    raw.insert(0, "capture_id", range(500))  # a column of ours: ignored
    shuffled = raw[list(reversed(raw.columns))]
    src = tmp_path / "h.csv"
    shuffled.to_csv(src, index=False)
    lay = layout(src)
    assert lay.header and lay.labelled and canonical(" Src-Byts ") == "src_bytes"
    got = _all(src)
    assert list(got.columns[:41]) == list(fields.FEATURES)
    assert (got["src_bytes"].to_numpy() == raw["src_byts"].to_numpy()).all()
    assert got[fields.CATEGORY].isin(fields.CATEGORIES).all()


def test_a_header_missing_a_feature_is_named(tmp_path):
    src = tmp_path / "h.csv"
    src.write_text(",".join(c for c in fields.FEATURES if c != "flag") + "\n")
    with pytest.raises(DataError, match=r"h.csv: line 1 \(header\): .*missing \['flag'\]"):
        layout(src)


def test_unknown_suffix_and_wrong_width_are_named(tmp_path):
    with pytest.raises(DataError, match="unknown file type '.json'"):
        layout(tmp_path / "x.json")
    src = tmp_path / "x.csv"
    src.write_text("1,2,3\n")
    with pytest.raises(DataError, match="line 1: expected 41 .* got 3"):
        layout(src)


def _edited(mirror, rows: int, line: int, field: int, value: str) -> list[str]:
    """The first ``rows`` lines of the real 10% file, with one field of 0-based ``line`` replaced."""
    with gzip.open(mirror / KDD10, "rt") as f:
        lines = [next(f) for _ in range(rows)]
    parts = lines[line].split(",")
    parts[field] = value
    lines[line] = ",".join(parts)
    return lines


def test_a_fault_deep_in_a_big_file_names_its_line(mirror, tmp_path):
    """Chunks are streamed: the line number counts across chunks (and the header)."""
    lines = _edited(mirror, 200_000, 149_999, fields.FEATURES.index("count"), "many")
    src = tmp_path / "big.csv.gz"
    with gzip.open(src, "wt") as f:
        f.write(",".join([*fields.FEATURES, "label"]) + "\n")
        f.writelines(lines)
    lay, chunks = iter_records(src)
    assert lay.header
    with pytest.raises(DataError, match=r"line 150001, column 'count': expected an integer, got 'many'"):
        for _ in chunks:
            pass


def test_out_of_range_values_are_named_with_their_line(mirror, tmp_path):
    lines = _edited(mirror, 120_000, 110_000, fields.FEATURES.index("serror_rate"), "1.5")
    src = tmp_path / "r.csv"
    src.write_text("".join(lines))
    with pytest.raises(DataError, match=r"line 110001, column 'serror_rate': expected a rate in \[0, 1\], got 1.5"):
        _all(src)


def _as_floats(lines: list[str]) -> list[str]:
    """The lines as a dataframe with a missing value somewhere writes them: every count ``491.0``."""
    counts = [i for i, c in enumerate(fields.FEATURES) if c in fields.NUMERIC and c not in fields.FLOAT_COLUMNS]
    out = []
    for line in lines:
        parts = line.rstrip("\n").split(",")
        for i in counts:
            parts[i] = f"{float(parts[i])!r}"
        out.append(",".join(parts) + "\n")
    return out


@pytest.mark.parametrize("chunk_rows", [7_000, 100_000])
def test_counts_written_as_floats_are_those_counts_and_a_fraction_is_named(mirror, tmp_path, chunk_rows):
    lines = _edited(mirror, 30_000, 0, 0, "0")
    plain, floats = tmp_path / "plain.csv", tmp_path / "floats.csv"
    plain.write_text("".join(lines))
    floats.write_text("".join(_as_floats(lines)))
    assert floats.read_text().startswith("0.0,tcp,http,SF,181.0,5450.0,")  # the first record
    want, got = _all(plain, chunk_rows=chunk_rows), _all(floats, chunk_rows=chunk_rows)
    pd.testing.assert_frame_equal(got, want)  # the same values and dtypes: counts are int64
    assert got["src_bytes"].dtype == "int64"
    for value, expected in (("0.5", "an integer, got 0.5"), ("1e17", "a count below 2**53, got 1e+17")):
        bad = _as_floats(_edited(mirror, 30_000, 20_000, fields.FEATURES.index("hot"), value))
        floats.write_text("".join(bad))
        with pytest.raises(DataError, match=rf"floats.csv: line 20001, column 'hot': expected {re.escape(expected)}$"):
            _all(floats, chunk_rows=chunk_rows)
