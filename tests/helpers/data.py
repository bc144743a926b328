"""The real data files and slices of them, written at test time."""

from __future__ import annotations

import gzip
from pathlib import Path

#: The KDD Cup 99 10% file, as distributed (494,021 rows)
KDD10 = "kddcup.data_10_percent.gz"
#: NSL-KDD's test file
NSL_TEST = "KDDTest+.txt"
#: Lines of the 10% file in a slice: the first ones hold enough normal rows for the default split
#: (test 20,000, threshold batch 10,000, with dedupe too) and a few attacks of every category
SLICE_LINES = 150_000


def write_head(src: Path, dst: Path, lines: int) -> Path:
    """Write the first ``lines`` lines of a real (gzipped) KDD file to ``dst``, gzipped if dst ends .gz."""
    opener = gzip.open if dst.suffix == ".gz" else open
    with gzip.open(src, "rt") as fin, opener(dst, "wt") as fout:
        for _, line in zip(range(lines), fin):
            fout.write(line)
    return dst


def slice_overrides(path: Path) -> list[str]:
    """Hydra overrides that make the slice at ``path`` the data set (``dataset=local``)."""
    return ["dataset=local", f"dataset.path={path}"]
