"""The data stages: download → split → encode. Config in, files out; no torch imported.

Each stage imports what it alone needs (a stage is its own process under DVC: start-up counts).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kddad.config import Config, DataFileConfig
from kddad.data import fields
from kddad.data.download import fetch
from kddad.errors import DataError
from kddad.io import NpyWriter, atomic_dir, write_json
from kddad.paths import Paths, feature_files, features_meta, split_file

if TYPE_CHECKING:
    from kddad.features.encoder import FeatureEncoder

log = logging.getLogger(__name__)


def download(cfg: Config, paths: Paths = Paths()) -> list[Path]:
    """Place the verified raw file(s) of ``cfg.dataset`` under data/raw/: the main file, and its test file."""
    return [
        fetch(
            f.raw_name,
            paths.raw,
            sha256=f.sha256,
            records_sha256=f.records_sha256,
            urls=f.urls,
            path=f.path,
            mirror=cfg.download.mirror,
            timeout_s=cfg.download.timeout_s,
        )
        for f in (cfg.dataset, cfg.dataset.test)
        if f is not None
    ]


def _raw(file: DataFileConfig, paths: Paths) -> Path:
    raw = paths.raw / file.raw_name
    if not raw.is_file():
        raise DataError(f"{raw}: not found; run the download stage first (dvc repro download)")
    return raw


def split(cfg: Config, paths: Paths = Paths()) -> dict:
    """Split the raw file, write data/split/*.parquet and reports/split.json.

    Besides train, val, threshold and test: ``attacks``, every attack row held out from training
    and thresholding, for the evaluate stage's second view. The file is read twice and never held
    whole (:mod:`kddad.data.split_files`), so its size does not set the stage's memory.
    """
    from kddad.data.split import ALL_SPLITS
    from kddad.data.split_files import split_files

    start = time.perf_counter()
    test = cfg.dataset.test
    with atomic_dir(paths.split) as tmp:
        report = split_files(
            _raw(cfg.dataset, paths),
            cfg.split,
            {name: split_file(tmp, name) for name in ALL_SPLITS},
            test=None if test is None else _raw(test, paths),
            allow_unknown=cfg.dataset.allow_unknown,
            rows=cfg.dataset.rows,
            test_rows=None if test is None else test.rows,
        )
    write_json(paths.split_report, report)
    log.info(
        "split: %s rows, outlier fraction %s (%.1f s)",
        report["rows"],
        report["outlier_frac"],
        time.perf_counter() - start,
    )
    return report


def split_path(name: str, paths: Paths = Paths()) -> Path:
    """The split stage's file of split ``name``, which must be there."""
    path = split_file(paths.split, name)
    if not path.is_file():
        raise DataError(f"{path}: not found; run the split stage first (dvc repro split)")
    return path


def load_split(name: str, paths: Paths = Paths()) -> pd.DataFrame:
    return pd.read_parquet(split_path(name, paths))


def encode(cfg: Config, paths: Paths = Paths()) -> FeatureEncoder:
    """Fit the encoder on train, write float32 arrays for every split and the encoder.

    The encoder is fitted on the train split's columns it reads; every split is then audited,
    encoded and written a chunk at a time, so the stage holds one split whole only for fitting.
    """
    import pyarrow.parquet as pq

    from kddad.data.audit import Audit
    from kddad.data.read import ALLOW_HINT
    from kddad.data.split import ALL_SPLITS
    from kddad.data.split_files import read_chunks
    from kddad.features.encoder import FeatureEncoder

    files = {name: split_path(name, paths) for name in ALL_SPLITS}
    enc = FeatureEncoder(cfg.features.numeric, cfg.features.categorical, cfg.scaling.method, cfg.scaling.log1p)
    enc.fit(pd.read_parquet(files["train"], columns=enc.columns))
    width = len(enc.feature_names)
    meta = {"feature_names": enc.feature_names, "rows": {}, "unknown_categories": {}}
    shares = {}
    with atomic_dir(paths.features) as tmp:
        for name, path in files.items():
            where = str(path)
            rows = pq.ParquetFile(path).metadata.num_rows
            audit = Audit(where)
            # a test file in another spelling: its inliers' categories unseen too (attacks may well use
            # services the training rows never had: they are not what the check is for)
            inliers = Audit(f"{where} (its {cfg.split.inlier} rows)")
            X_file, y_file = feature_files(tmp, name)
            with NpyWriter(X_file, np.float32, (rows, width)) as X_out, NpyWriter(y_file, np.int8, (rows,)) as y_out:
                for frame in read_chunks(path):
                    audit.add(frame, enc.categories, labels=False)  # the raw file's labels were checked in split
                    inliers.add(frame[frame[fields.IS_OUTLIER] == 0], enc.categories, labels=False)
                    X_out.append(enc.transform(frame, what=where, report_unknown=False, first=y_out.written))
                    y_out.append(frame[fields.IS_OUTLIER].to_numpy(dtype=np.int8))
            inliers.check(cfg.dataset.allow_unknown, ALLOW_HINT)
            shares[name] = f"{audit.unseen_share:.2%}"
            meta["unknown_categories"][name] = {col: dict(counts) for col, counts in audit.unseen.items()}
            meta["rows"][name] = rows
        write_json(features_meta(tmp), meta)
    log.info("encode: share of rows with a category unseen in train (listed in meta.json): %s", shares)
    enc.save(paths.encoder)
    log.info(
        "encode: %d features (%s, %s scaling%s) for %s",
        len(enc.feature_names),
        cfg.features.name,
        cfg.scaling.method,
        f" + log1p of {len(enc.logged)} columns" if enc.logged else "",
        meta["rows"],
    )
    return enc
