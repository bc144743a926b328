import gzip
import re

import pytest
from helpers.data import KDD10, write_head

from kddad.data import fields
from kddad.data.read import read_kdd, records_sha256
from kddad.errors import DataError


def test_full_file_parses_into_typed_named_columns(kdd):
    assert len(kdd) == 494021
    assert list(kdd.columns[:41]) == list(fields.FEATURES)
    assert (kdd["label"] == "normal").sum() == 97278
    assert not kdd["label"].str.endswith(".").any()
    assert kdd["is_outlier"].sum() == 494021 - 97278
    assert kdd.groupby("category").size().to_dict() == {
        "dos": 391458,
        "normal": 97278,
        "probe": 4107,
        "r2l": 1126,
        "u2r": 52,
    }
    assert str(kdd["src_bytes"].dtype) == "int64" and str(kdd["serror_rate"].dtype) == "float64"
    assert kdd["row"].iloc[-1] == 494020


def test_nsl_kdd_with_difficulty_column_and_unseen_attacks(mirror):
    df = read_kdd(mirror / "KDDTest+.txt")
    assert len(df) == 22544 and df["difficulty"].dtype == "int64" and df["difficulty"].between(0, 21).all()
    assert (df["difficulty"] < 21).sum() == 11850  # KDDTest-21's published size
    assert set(df["category"]) <= set(fields.CATEGORIES)
    assert (df.loc[df["label"] == "mscan", "category"] == "probe").all()


def _corrupt(mirror, tmp_path, line_no: int, field: int, value: str):
    lines = gzip.open(mirror / KDD10, "rt").readlines()[:200]
    parts = lines[line_no - 1].split(",")
    parts[field] = value
    lines[line_no - 1] = ",".join(parts)
    path = tmp_path / "bad.txt"
    path.write_text("".join(lines))
    return path


def test_non_numeric_value_names_line_and_column(mirror, tmp_path):
    path = _corrupt(mirror, tmp_path, 57, 4, "lots")
    with pytest.raises(DataError, match=r"bad.txt: line 57, column 'src_bytes': expected an integer, got 'lots'"):
        read_kdd(path)


def test_wrong_field_count_names_line(mirror, tmp_path):
    path = _corrupt(mirror, tmp_path, 12, 5, "1,2")
    with pytest.raises(DataError, match=r"line 12: expected 42 comma-separated fields"):
        read_kdd(path)


def test_rate_out_of_range_names_line_and_column(mirror, tmp_path):
    path = _corrupt(mirror, tmp_path, 3, 24, "1.5")
    with pytest.raises(DataError, match=r"line 3, column 'serror_rate': expected a rate in \[0, 1\], got 1.5"):
        read_kdd(path)


def test_slice_of_the_real_file_reads_the_same_rows(mirror, kdd, tmp_path):
    head = read_kdd(write_head(mirror / KDD10, tmp_path / "head.gz", 1000))
    assert head.drop(columns="row").equals(kdd.iloc[:1000].drop(columns="row").reset_index(drop=True))


@pytest.mark.parametrize("field, col", [(24, "serror_rate"), (1, "protocol_type"), (41, "label")])
def test_missing_value_names_line_and_column(mirror, tmp_path, field, col):
    path = _corrupt(mirror, tmp_path, 9, field, "\n" if field == 41 else "")
    with pytest.raises(DataError, match=f"line 9, column '{col}': missing value"):
        read_kdd(path)


def test_records_checksum_agrees_across_number_formats_and_catches_a_changed_value(mirror, tmp_path):
    """The distributed KDDTest+ writes 0.00 where this copy writes 0.0: same records, other bytes."""
    lines = (mirror / "KDDTest+.txt").read_text().splitlines(keepends=True)[:300]
    two = tmp_path / "two_decimals.txt"
    two.write_text("".join(re.sub(r"(?<=,)(\d\.\d)(?=,)", r"\g<1>0", line) for line in lines))
    one = tmp_path / "one_decimal.txt"
    one.write_text("".join(lines))
    assert one.read_bytes() != two.read_bytes() and ",0.00," in two.read_text()
    assert records_sha256(one) == records_sha256(two)
    changed = lines.copy()
    fields = changed[7].split(",")
    fields[4] = str(int(fields[4]) + 1)  # src_bytes of one row
    changed[7] = ",".join(fields)
    (tmp_path / "changed.txt").write_text("".join(changed))
    assert records_sha256(tmp_path / "changed.txt") != records_sha256(one)
