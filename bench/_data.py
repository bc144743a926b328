"""Shared by the benchmarks: a composed config and its data stages' outputs, from the library's cache."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import yaml

from kddad import config
from kddad.paths import Paths
from kddad.stages.chain import prepare_data

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
KDD10 = "kddcup.data_10_percent.gz"


def mirror() -> Path:
    """Where the real files are: ``$KDDAD_DATA_MIRROR``, else ``../shared/data``."""
    return Path(os.environ.get("KDDAD_DATA_MIRROR", str(ROOT.parent / "shared" / "data")))


def big_file(repeat: int) -> Path:
    """The KDD Cup 99 10% file repeated ``repeat`` times, gzipped as the full data set is
    distributed (10: 4,940,210 rows, the full set's size), written once under bench/.cache/."""
    dst = CACHE / f"kdd10x{repeat}.gz"
    if not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = gzip.decompress((mirror() / KDD10).read_bytes())
        tmp = dst.with_suffix(".tmp")
        with gzip.open(tmp, "wb", compresslevel=1) as f:
            for _ in range(repeat):
                f.write(data)
        tmp.replace(dst)
    return dst


def composed(overrides: list[str] | None = None) -> config.Config:
    """conf/ composed with ``overrides`` and validated (a :class:`~kddad.errors.ConfigError` naming the key)."""
    return config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", overrides or [])))


def prepared(overrides: list[str] | None = None) -> tuple[config.Config, Paths]:
    """Compose conf/ with ``overrides``; run the data stages once per distinct data config."""
    cfg = composed(overrides)
    cfg = cfg.model_copy(update={"download": cfg.download.model_copy(update={"mirror": str(mirror())})})
    return cfg, Paths(prepare_data(cfg, CACHE))
