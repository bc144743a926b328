"""The data stages as library calls (no DVC): config in, files out."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
from helpers.config import with_keys
from helpers.data import KDD10, write_head
from helpers.repo import ROOT
from helpers.run import run

from kddad import config
from kddad.data import fields
from kddad.features.encoder import FeatureEncoder
from kddad.paths import Paths
from kddad.stages.data import download, encode, split


def _cfg(cfg: config.Config, mirror, **groups) -> config.Config:
    return with_keys(cfg, download={"mirror": str(mirror)}, **groups)


ALIBI18 = {"name": "alibi18", "numeric": list(fields.ALIBI18), "categorical": []}


def test_three_stages_write_their_outputs(cfg, mirror, tmp_path):
    paths = Paths(tmp_path)
    c = _cfg(cfg, mirror, features=ALIBI18)
    assert download(c, paths) == [tmp_path / "data/raw" / KDD10]
    report = split(c, paths)
    assert sorted(p.name for p in paths.split.iterdir()) == [
        f"{s}.parquet" for s in ("attacks", "test", "threshold", "threshold_attacks", "train", "val")
    ]
    assert json.loads((paths.reports / "split.json").read_text()) == report
    assert report["identical_to_train"]["on_all41"] == {
        "val": 0,
        "threshold": 0,
        "test": 0,
        "attacks": 0,
        "threshold_attacks": 0,
    }
    encode(c, paths)
    meta = json.loads((paths.features / "meta.json").read_text())
    assert meta["rows"] == report["rows"] and len(meta["feature_names"]) == 18
    X = np.load(paths.features / "test.npy")
    y = np.load(paths.features / "test_y.npy")
    assert X.dtype == np.float32 and X.shape == (report["rows"]["test"], 18)
    assert y.sum() == report["outliers"]["test"]
    # the saved encoder reproduces the arrays from the split files
    test = pd.read_parquet(paths.split / "test.parquet")
    assert np.array_equal(FeatureEncoder.load(paths.encoder).transform(test), X)
    # no stray temporary files or folders
    assert not [p for p in tmp_path.rglob(".*") if p.name != ".gitignore"]


def test_all41_encodes_categoricals(cfg, mirror, tmp_path):
    paths = Paths(tmp_path)
    all41 = {"name": "all41", "numeric": list(fields.NUMERIC), "categorical": list(fields.CATEGORICAL)}
    c = _cfg(cfg, mirror, features=all41, scaling={"method": "minmax", "log1p": True})
    download(c, paths)
    split(c, paths)
    encode(c, paths)
    names = json.loads((paths.features / "meta.json").read_text())["feature_names"]
    assert "service_http" in names and "protocol_type_tcp" in names and len(names) > 41
    X = np.load(paths.features / "train.npy")
    assert X.min() >= 0 and X.max() <= 1 + 1e-6


def test_local_dataset_from_a_slice_of_the_real_file(cfg, mirror, tmp_path):

    src = write_head(mirror / KDD10, tmp_path / "capture.txt", 60000)
    paths = Paths(tmp_path / "proj")
    c = _cfg(
        cfg,
        mirror,
        dataset={"name": "local", "path": str(src), "filename": None, "sha256": None, "rows": None, "urls": []},
        split={"threshold": {"n": 1000, "perc_outlier": 5}, "test": {"n": 2000, "perc_outlier": 10}},
    )
    assert [p.name for p in download(c, paths)] == ["capture.txt"]
    report = split(c, paths)
    assert report["rows_in"] == 60000 and report["rows"]["test"] == 2000


def test_data_stages_do_not_import_torch_or_lightning(cfg, mirror, tmp_path):
    """Run all three data stages (on a slice of the real file) and look at what got imported."""

    src = write_head(mirror / KDD10, tmp_path / "capture.txt", 30000)
    code = (
        "import sys, yaml; from kddad import config; from kddad.paths import Paths\n"
        "from kddad.stages.data import download, split, encode\n"
        "raw = yaml.safe_load(open(sys.argv[1]))\n"
        "raw['dataset'] = {'name': 'local', 'path': sys.argv[2]}\n"
        "raw['split']['threshold'] = {'n': 500, 'perc_outlier': 5}\n"
        "raw['split']['test'] = {'n': 1000, 'perc_outlier': 10}\n"
        "cfg = config.validate(raw); paths = Paths(sys.argv[3])\n"
        "download(cfg, paths); split(cfg, paths); encode(cfg, paths)\n"
        "bad = [m for m in ('torch', 'lightning', 'pytorch_lightning', 'mlflow') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    run([sys.executable, "-c", code, ROOT / "params.yaml", src, tmp_path / "p"], ROOT)
    assert (tmp_path / "p" / "data" / "features" / "train.npy").is_file()


def test_split_without_raw_file_says_which_stage_to_run(cfg, tmp_path):
    from kddad.errors import DataError

    with pytest.raises(DataError, match=r"data/raw/kddcup.data_10_percent.gz: not found; run the download stage"):
        split(cfg, Paths(tmp_path))


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from kddad.io import atomic_dir, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "r" / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "r" / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
