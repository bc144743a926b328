"""Time the data stages' work on the real 494,021-row file: parse, split, encode.

Usage: python bench/data_stages.py [--mirror DIR]   (default: $KDDAD_DATA_MIRROR or ../shared/data)
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import yaml

from kddad.config import SplitConfig
from kddad.data import fields
from kddad.data.read import read_kdd
from kddad.data.split import split
from kddad.features.encoder import FeatureEncoder

ROOT = Path(__file__).resolve().parents[1]


def timed(label: str, fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    print(f"{label:<48} {best:7.2f} s  (best of {repeat})")
    return out


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # the alibi preset warns of its leakage on every run
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default=os.environ.get("KDDAD_DATA_MIRROR", str(ROOT.parent / "shared" / "data")))
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    df = timed(
        "read kddcup.data_10_percent.gz (494,021 rows)",
        lambda: read_kdd(Path(args.mirror) / "kddcup.data_10_percent.gz"),
    )
    frames, _ = timed("split grouped (default)", lambda: split(df, SplitConfig()))
    timed("split grouped + dedupe", lambda: split(df, SplitConfig(dedupe=True)))
    alibi = SplitConfig(**yaml.safe_load((ROOT / "conf/split/alibi_example.yaml").read_text()))
    timed("split alibi_example (400,000-row train)", lambda: split(df, alibi))
    for name, num, cat in (("alibi18", fields.ALIBI18, ()), ("all41", fields.NUMERIC, fields.CATEGORICAL)):

        def fit_and_transform(num=num, cat=cat):
            enc = FeatureEncoder(num, cat, "standard").fit(frames["train"])
            return [enc.transform(f) for f in frames.values()]

        timed(f"encode {name}: fit on train, transform 4 splits", fit_and_transform)


if __name__ == "__main__":
    main()
