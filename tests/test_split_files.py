"""The split stage's two passes over a file, and the encode stage a row group at a time, against
the same work on the whole file in memory: every protocol, chunks and row groups far smaller
than the file (so rows cross chunk boundaries), the real 10% file and NSL-KDD."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.config import with_keys
from helpers.data import KDD10, NSL_TEST, write_head
from helpers.repo import ROOT

from kddad.config import SplitConfig
from kddad.data import split_files
from kddad.data.read import read_kdd
from kddad.data.split import ALL_SPLITS, split
from kddad.errors import DataError
from kddad.features.encoder import FeatureEncoder
from kddad.io import NpyWriter, npy_chunks
from kddad.paths import Paths, feature_files, split_file
from kddad.stages.data import encode

NSL_TRAIN = "KDDTrain+_20Percent.txt"


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7,001 rows and row groups of 20,000: boundaries fall inside every split."""
    monkeypatch.setattr(split_files, "CHUNK_ROWS", 7001)
    monkeypatch.setattr(split_files, "ROW_GROUP_ROWS", 20_000)


def _preset(name: str, **change) -> SplitConfig:
    raw = yaml.safe_load((ROOT / "conf" / "split" / f"{name}.yaml").read_text())
    raw["seed"] = 3
    return SplitConfig.model_validate({**raw, **change})


@pytest.fixture(scope="module")
def head(tmp_path_factory, mirror):
    """The first 120,000 rows of the 10% file, gzipped."""
    return write_head(mirror / KDD10, tmp_path_factory.mktemp("head") / "head.gz", 120_000)


def _as_written(frame: pd.DataFrame, tmp_path) -> pd.DataFrame:
    """A frame as the split stage once wrote it whole (``to_parquet``) and the encode stage reads it."""
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    return pd.read_parquet(tmp_path / "whole.parquet")


def _streamed(main, cfg, tmp_path, test=None):
    files = {name: split_file(tmp_path, name) for name in ALL_SPLITS}
    report = split_files.split_files(main, cfg, files, test=test, progress=False)
    return {name: pd.read_parquet(path) for name, path in files.items()}, report, files


@pytest.mark.parametrize(
    "preset, change",
    [
        ("default", {}),
        ("default", {"dedupe": True, "group_by": "all41"}),
        ("alibi_example", {}),  # batches drawn with replacement, in shuffled order
        ("dagmm", {}),  # the classes relabelled as they are written
        ("kddrev", {}),
    ],
    ids=["grouped", "dedupe", "alibi_example", "dagmm", "kddrev"],
)
def test_the_streamed_split_writes_what_the_split_in_memory_gives(head, tmp_path, small_chunks, preset, change):
    cfg = _preset(preset, **change)
    if preset == "alibi_example":
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"n": 30_000})})
    if preset == "default":  # the head of the file holds fewer rows than the default batches take
        cfg = cfg.model_copy(
            update={
                "threshold": cfg.threshold.model_copy(update={"n": 2000}),
                "test": cfg.test.model_copy(update={"n": 4000}),
            }
        )
    want, want_report = split(read_kdd(head), cfg)
    got, report, files = _streamed(head, cfg, tmp_path)
    assert report == want_report
    for name in ALL_SPLITS:
        pd.testing.assert_frame_equal(got[name], _as_written(want[name], tmp_path), obj=name)
    if preset == "default" and not change:
        assert len(got["train"]) > 20_000 and pq.ParquetFile(files["train"]).num_row_groups > 1


def test_the_streamed_split_of_a_separate_test_file(mirror, tmp_path, small_chunks):
    cfg = _preset("test_file")
    want, want_report = split(read_kdd(mirror / NSL_TRAIN), cfg, read_kdd(mirror / NSL_TEST))
    got, report, _ = _streamed(mirror / NSL_TRAIN, cfg, tmp_path, test=mirror / NSL_TEST)
    assert report == want_report
    for name in ALL_SPLITS:
        pd.testing.assert_frame_equal(got[name], _as_written(want[name], tmp_path), obj=name)


def test_a_bad_value_late_in_the_file_is_named_and_nothing_is_written(head, tmp_path, small_chunks, cfg, mirror):
    lines = gzip.decompress(head.read_bytes()).decode().splitlines(keepends=True)
    fields_ = lines[99_999].split(",")
    fields_[4] = "-7"  # src_bytes
    lines[99_999] = ",".join(fields_)
    bad = tmp_path / "bad.txt"
    bad.write_text("".join(lines))
    paths = Paths(tmp_path / "proj")
    paths.raw.mkdir(parents=True)
    (paths.raw / "bad.txt").write_bytes(bad.read_bytes())
    from kddad.stages.data import split as split_stage

    c = with_keys(
        cfg, dataset={"name": "local", "path": str(bad), "filename": None, "sha256": None, "rows": None, "urls": []}
    )
    with pytest.raises(DataError, match=r"bad\.txt: line 100000, column 'src_bytes': expected a non-negative count"):
        split_stage(c, paths)
    assert not paths.split.exists() and not list(paths.raw.parent.glob(".*"))


def test_encode_a_row_group_at_a_time_writes_the_arrays_of_the_whole_splits(
    head, tmp_path, small_chunks, cfg, mirror, monkeypatch
):
    import kddad.stages.data as stages

    monkeypatch.setattr(split_files, "ROW_GROUP_ROWS", 5000)
    paths = Paths(tmp_path)
    small = {"threshold": {"n": 2000, "perc_outlier": 5}, "test": {"n": 4000, "perc_outlier": 10}}
    c = with_keys(
        cfg,
        dataset={"name": "local", "path": str(head), "filename": None, "sha256": None, "rows": None, "urls": []},
        split=small,
    )
    stages.download(c, paths)
    stages.split(c, paths)
    enc = encode(c, paths)
    frames = {name: pd.read_parquet(split_file(paths.split, name)) for name in ALL_SPLITS}
    whole = FeatureEncoder(c.features.numeric, c.features.categorical, c.scaling.method, c.scaling.log1p)
    whole.fit(frames["train"])
    assert whole.describe() == enc.describe()
    for name, frame in frames.items():
        X_file, y_file = feature_files(paths.features, name)
        X, y = np.load(X_file), np.load(y_file)
        assert np.array_equal(X, whole.transform(frame)), name
        assert np.array_equal(y, frame["is_outlier"].to_numpy(np.int8)), name
    assert len(frames["attacks"]) > 5000  # read back in several row groups


def test_an_npy_file_written_in_pieces_is_the_file_np_save_writes(tmp_path):
    a = np.random.default_rng(0).random((1001, 7)).astype(np.float32)
    np.save(tmp_path / "whole.npy", a)
    with NpyWriter(tmp_path / "pieces.npy", np.float32, a.shape) as out:
        for piece in np.array_split(a, 4):
            out.append(piece)
    assert (tmp_path / "pieces.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    read = list(npy_chunks(tmp_path / "whole.npy", 300))
    assert [len(r) for r in read] == [300, 300, 300, 101] and np.array_equal(np.concatenate(read), a)
    with pytest.raises(ValueError, match="1000 rows written of the 1001"):
        with NpyWriter(tmp_path / "short.npy", np.float32, a.shape) as out:
            out.append(a[:1000])
