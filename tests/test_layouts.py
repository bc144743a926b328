"""Files laid out as common tools and public copies write them, read by the one reader.

A slice of the real 10% file is rewritten at test time in each layout; every layout must give
``dataset=local`` the same split as the canonical file, and ``kddad score`` the same scores. A file
in another spelling (upper-case categories, a label set with no ``normal``) must stop the run.
"""

from __future__ import annotations

import csv
import gzip
import logging
from pathlib import Path

import pandas as pd
import pytest
from helpers.config import compose
from helpers.data import KDD10

from kddad.cli import main
from kddad.data import fields
from kddad.errors import DataError
from kddad.paths import Paths
from kddad.stages.chain import run_chain
from kddad.stages.data import download, encode, split

#: Every 25th record of the 10% file: normals and attacks of each category, about 20,000 rows.
STEP = 25
#: The eight columns OpenML's / Kaggle's KDD Cup 99 CSV writes with an `l` prefix (num_compromised … num_outbound_cmds).
L_PREFIXED = fields.FEATURES[12:20]


@pytest.fixture(scope="module")
def rows(mirror) -> list[list[str]]:
    """The slice's records as the distributed file writes them (42 fields, labels with a dot)."""
    with gzip.open(mirror / KDD10, "rt") as f:
        return [line.rstrip("\n").split(",") for i, line in enumerate(f) if i % STEP == 0]


def _write(path: Path, rows: list[list[str]], header: list[str] | None = None, **kw) -> Path:
    with open(path, "w", newline="", encoding=kw.pop("encoding", "utf-8")) as f:
        writer = csv.writer(f, lineterminator=kw.pop("lineterminator", "\n"), **kw)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def _undotted(rows):
    return [[*r[:-1], r[-1].rstrip(".")] for r in rows]


def layouts(rows: list[list[str]], folder: Path) -> dict[str, Path]:
    """The slice in each layout found in the wild; ``canonical`` is the distributed one."""
    names = [*fields.FEATURES, "label"]
    misspelled = [("srv_error_rate" if n == "srv_serror_rate" else n) for n in names]
    openml = [("l" + n if n in L_PREFIXED else n) for n in names]
    frame = pd.DataFrame(rows, columns=names)
    pandas_csv = folder / "pandas.csv"
    frame.to_csv(pandas_csv)  # pandas' default: a header and its index column
    counts = [c for c in fields.NUMERIC if c not in fields.FLOAT_COLUMNS]
    with_floats = folder / "floats.csv"  # through a dataframe with a missing value: counts as 491.0
    frame.astype(dict.fromkeys(counts, float)).to_csv(with_floats, index=False)
    spaced = folder / "spaced.txt"
    spaced.write_text("".join(", ".join(r) + "\n" for r in rows))
    with gzip.open(folder / "canonical.gz", "wt", newline="") as f:
        f.writelines(",".join(r) + "\n" for r in rows)
    return {
        "canonical": folder / "canonical.gz",
        "misspelled_header": _write(folder / "misspelled.csv", rows, misspelled),
        "openml_l_prefixed": _write(folder / "openml.csv", _undotted(rows), openml),
        "bom_crlf": _write(folder / "excel.csv", rows, names, encoding="utf-8-sig", lineterminator="\r\n"),
        "space_after_comma": spaced,
        "labels_without_dots": _write(folder / "undotted.txt", _undotted(rows)),
        "pandas_index": pandas_csv,
        "quoted": _write(folder / "quoted.csv", rows, names, quoting=csv.QUOTE_ALL),
        "counts_as_floats": with_floats,
    }


@pytest.fixture(scope="module")
def files(rows, tmp_path_factory) -> dict[str, Path]:
    return layouts(rows, tmp_path_factory.mktemp("layouts"))


def _local(path: Path, mirror: Path, *overrides: str):
    return compose(
        "dataset=local",
        f"dataset.path={path}",
        "tracking.enabled=false",
        "split.threshold.n=400",  # sizes the slice's pools hold
        "split.test.n=800",
        *overrides,
        mirror=mirror,
    )


def _split(path: Path, mirror: Path, root: Path) -> dict[str, pd.DataFrame]:
    cfg, paths = _local(path, mirror), Paths(root)
    download(cfg, paths)
    split(cfg, paths)
    return {p.stem: pd.read_parquet(p) for p in sorted(paths.split.glob("*.parquet"))}


@pytest.fixture(scope="module")
def canonical_split(files, mirror, tmp_path_factory):
    return _split(files["canonical"], mirror, tmp_path_factory.mktemp("canonical"))


@pytest.mark.parametrize(
    "layout",
    [
        "misspelled_header",
        "openml_l_prefixed",
        "bom_crlf",
        "space_after_comma",
        "labels_without_dots",
        "pandas_index",
        "quoted",
        "counts_as_floats",
    ],
)
def test_every_layout_gives_the_canonical_split(layout, files, canonical_split, mirror, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    got = _split(files[layout], mirror, tmp_path)
    assert got.keys() == canonical_split.keys()
    for name, frame in canonical_split.items():
        pd.testing.assert_frame_equal(got[name], frame, check_dtype=False, obj=f"{layout}: {name}")
    taken = [r.getMessage() for r in caplog.records if "taken by their position" in r.getMessage()]
    if layout == "misspelled_header":
        assert len(taken) == 1 and "'srv_error_rate' as 'srv_serror_rate'" in taken[0]
    elif layout == "openml_l_prefixed":
        assert len(taken) == 1 and "8 name(s)" in taken[0] and "'lroot_shell' as 'root_shell'" in taken[0]
    else:
        assert not taken


@pytest.fixture(scope="module")
def trained(files, mirror, tmp_path_factory) -> Path:
    """One pipeline run end to end (download → evaluate) on a headered layout: the detector folder."""
    root = tmp_path_factory.mktemp("trained")
    metrics = run_chain(_local(files["misspelled_header"], mirror), root / "work", root / "cache")
    assert 0.5 < metrics["roc_auc"] <= 1
    return root / "work" / "models" / "detector"


def _scores(detector: Path, src: Path, out: Path) -> pd.DataFrame:
    main(["score", "--model", str(detector), "--input", str(src), "--output", str(out), "--no-progress"])
    return pd.read_csv(out)


def test_every_layout_scores_as_the_canonical_file(rows, files, trained, tmp_path, capsys):
    want = _scores(trained, files["canonical"], tmp_path / "canonical.csv")
    assert len(want) == len(rows) and 0 < want["is_outlier"].mean() < 1
    for layout, src in files.items():
        got = _scores(trained, src, tmp_path / f"{layout}.csv")
        pd.testing.assert_frame_equal(got, want, obj=layout)
    assert "attacks of" not in capsys.readouterr().out  # the metrics go to the log, the summary to stdout


def _recased(rows, column: str) -> list[list[str]]:
    i = fields.FEATURES.index(column)
    return [[*r[:i], r[i].upper(), *r[i + 1 :]] for r in rows]


def test_a_file_whose_categories_are_all_unseen_stops_scoring(rows, trained, tmp_path, caplog):
    src = _write(tmp_path / "upper.csv", _recased(rows, "service"))
    out = tmp_path / "out.csv"
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--model", str(trained), "--input", str(src), "--output", str(out), "--no-progress"])
    assert exit_.value.code == 2
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert error.startswith(f"{src}: ") and "'service'" in error and "another letter case (" in error
    assert "--allow-unknown" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upper.csv"]  # no output, no temporary file
    main(
        [
            "score",
            "--model",
            str(trained),
            "--input",
            str(src),
            "--output",
            str(out),
            "--no-progress",
            "--allow-unknown",
        ]
    )
    assert len(pd.read_csv(out)) == len(rows)


def test_a_label_set_without_normal_stops_training(rows, mirror, tmp_path):
    upper = [[*r[:-1], r[-1].upper()] for r in rows]
    src = _write(tmp_path / "upper_labels.csv", upper)
    with pytest.raises(
        DataError, match=r"upper_labels.csv: no row is labelled 'normal'.*another letter case \('NORMAL'"
    ):
        _split(src, mirror, tmp_path / "root")
    codes = [[*r[:-1], "0" if r[-1] == "normal." else "1"] for r in rows]
    with pytest.raises(DataError, match=r"no row is labelled 'normal'.*numeric codes"):
        _split(_write(tmp_path / "codes.csv", codes), mirror, tmp_path / "root2")


def test_a_split_whose_normal_rows_are_all_unseen_stops_encoding(files, mirror, tmp_path):
    """A test file in another spelling (here: the test split's services upper-cased) stops the encode
    stage; attacks with services the normal training rows never had do not."""
    cfg, paths = _local(files["canonical"], mirror), Paths(tmp_path)
    download(cfg, paths)
    split(cfg, paths)
    encode(cfg, paths)  # the real slice encodes
    test = pd.read_parquet(paths.split / "test.parquet")
    test["service"] = test["service"].str.upper()
    test.to_parquet(paths.split / "test.parquet", index=False)
    with pytest.raises(DataError, match=r"test.parquet \(its normal rows\): 100% of rows .*another letter case"):
        encode(cfg, paths)
