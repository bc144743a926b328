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
from kddad.io import atomic_dir, write_json
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


def _read_raw(file: DataFileConfig, paths: Paths, key: str, allow_unknown: bool) -> pd.DataFrame:
    from kddad.data.read import read_kdd

    raw = paths.raw / file.raw_name
    if not raw.is_file():
        raise DataError(f"{raw}: not found; run the download stage first (dvc repro download)")
    df = read_kdd(raw, allow_unknown=allow_unknown)
    if file.rows is not None and len(df) != file.rows:
        raise DataError(f"{raw}: expected {file.rows} rows ({key}), got {len(df)}")
    return df


def split(cfg: Config, paths: Paths = Paths()) -> dict:
    """Parse the raw file, split it, write data/split/*.parquet and reports/split.json.

    Besides train, val, threshold and test: ``attacks``, every attack row held out from training
    and thresholding, for the evaluate stage's second view.
    """
    from kddad.data.split import split as split_rows

    start = time.perf_counter()
    allow = cfg.dataset.allow_unknown
    df = _read_raw(cfg.dataset, paths, "dataset.rows", allow)
    test = None if cfg.dataset.test is None else _read_raw(cfg.dataset.test, paths, "dataset.test.rows", allow)
    frames, report = split_rows(df, cfg.split, test)
    with atomic_dir(paths.split) as tmp:
        for name, frame in frames.items():
            frame.to_parquet(split_file(tmp, name), index=False)
    write_json(paths.split_report, report)
    log.info(
        "split: %s rows, outlier fraction %s (%.1f s)",
        report["rows"],
        report["outlier_frac"],
        time.perf_counter() - start,
    )
    return report


def load_split(name: str, paths: Paths = Paths()) -> pd.DataFrame:
    path = split_file(paths.split, name)
    if not path.is_file():
        raise DataError(f"{path}: not found; run the split stage first (dvc repro split)")
    return pd.read_parquet(path)


def encode(cfg: Config, paths: Paths = Paths()) -> FeatureEncoder:
    """Fit the encoder on train, write float32 arrays for every split and the encoder."""
    from kddad.data.audit import Audit
    from kddad.data.read import ALLOW_HINT
    from kddad.data.split import ALL_SPLITS
    from kddad.features.encoder import FeatureEncoder

    frames = {name: load_split(name, paths) for name in ALL_SPLITS}
    enc = FeatureEncoder(cfg.features.numeric, cfg.features.categorical, cfg.scaling.method, cfg.scaling.log1p)
    enc.fit(frames["train"])
    meta = {"feature_names": enc.feature_names, "rows": {}, "unknown_categories": {}}
    shares = {}
    for name, frame in frames.items():
        where = str(split_file(paths.split, name))
        audit = Audit(where)
        audit.add(frame, enc.categories, labels=False)  # the raw file's labels were checked in split
        shares[name] = f"{audit.unseen_share:.2%}"
        meta["unknown_categories"][name] = {col: dict(counts) for col, counts in audit.unseen.items()}
        # a test file in another spelling: its inliers' categories unseen too (attacks may well use
        # services the training rows never had: they are not what the check is for)
        inliers = Audit(f"{where} (its {cfg.split.inlier} rows)")
        inliers.add(frame[frame[fields.IS_OUTLIER] == 0], enc.categories, labels=False)
        inliers.check(cfg.dataset.allow_unknown, ALLOW_HINT)
    log.info("encode: share of rows with a category unseen in train (listed in meta.json): %s", shares)
    with atomic_dir(paths.features) as tmp:
        for name, frame in frames.items():
            X = enc.transform(frame, what=str(split_file(paths.split, name)), report_unknown=False)
            X_file, y_file = feature_files(tmp, name)
            np.save(X_file, X)
            np.save(y_file, frame[fields.IS_OUTLIER].to_numpy(dtype=np.int8))
            meta["rows"][name] = int(X.shape[0])
        write_json(features_meta(tmp), meta)
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
