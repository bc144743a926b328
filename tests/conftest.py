"""Shared fixtures: the real data files (KDDAD_DATA_MIRROR, else ../shared/data) and configs."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd
import pytest

from kddad import config
from kddad.data.read import read_kdd

ROOT = Path(__file__).resolve().parents[1]
KDD10 = "kddcup.data_10_percent.gz"


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The folder holding the real data files; tests fail (not skip) without it."""
    path = Path(os.environ.get("KDDAD_DATA_MIRROR", ROOT.parent / "shared" / "data"))
    for name in (KDD10, "KDDTest+.txt"):
        if not (path / name).is_file():
            pytest.fail(f"real data not found: {path / name}; set KDDAD_DATA_MIRROR to the folder holding "
                        f"{KDD10} and NSL-KDD's KDDTest+.txt")
    return path


@pytest.fixture(scope="session")
def kdd(mirror: Path) -> pd.DataFrame:
    """All 494,021 parsed rows of the 10% file (read once per session)."""
    return read_kdd(mirror / KDD10)


@pytest.fixture
def cfg() -> config.Config:
    """The committed default configuration."""
    return config.load(ROOT / "params.yaml")


def write_head(src: Path, dst: Path, lines: int) -> Path:
    """Write the first ``lines`` lines of a real (gzipped) KDD file to ``dst``, gzipped if dst ends .gz."""
    opener = gzip.open if dst.suffix == ".gz" else open
    with gzip.open(src, "rt") as fin, opener(dst, "wt") as fout:
        for _, line in zip(range(lines), fin):
            fout.write(line)
    return dst
