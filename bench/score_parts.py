"""Where ``kddad score``'s time goes: each part of scoring a chunk, on one thread in this process.

The file is read with the command's own reader (:func:`kddad.data.records.iter_batches`) and
each chunk scored with its own :func:`kddad.score_chunks.score_chunk`, one after the other in
this thread, under cProfile; the parts are the cumulative times of the functions that do them:

- read: the reader's Arrow batches (decompressing and parsing the text);
- frame and check: Arrow to pandas, the value checks, labels (:func:`~kddad.data.records.frame`);
- audit: the unseen-category and label counts (:meth:`~kddad.data.audit.Audit.add`);
- encode: :meth:`~kddad.features.encoder.FeatureEncoder.transform`;
- score: the model (:meth:`~kddad.detector.Detector.score`, input checks included);
- explain: the top-k features (:func:`~kddad.explain.top_features`);
- serialise: the output as CSV (:func:`~kddad.score_chunks.csv_bytes`), and writing it;
- other: the rest (building the output table, bookkeeping).

Run from the project root after ``make run``: ``python bench/score_parts.py`` (the 10% file;
``--repeat 10`` for 4.94 million rows). cProfile's own cost falls mostly on "other".
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import time

import torch
from _data import ROOT, big_file, mirror

from kddad.data.records import iter_batches
from kddad.score_chunks import ChunkJob, score_chunk
from kddad.scoring import load_detector

PARTS = {
    "read": ("records.py", "chunks"),
    "frame and check": ("records.py", "frame"),
    "audit": ("audit.py", "add"),
    "encode": ("encoder.py", "transform"),
    "score": ("detector.py", "score"),
    "explain": ("explain.py", "top_features"),
    "serialise": ("score_chunks.py", "csv_bytes"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "detector"))
    ap.add_argument("--repeat", type=int, default=1, help="the 10% file this many times (10: 4.94 M rows)")
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    det = load_detector(args.model, device="cpu")
    path = big_file(args.repeat) if args.repeat > 1 else mirror() / "kddcup.data_10_percent.gz"
    lay, chunks = iter_batches(path, args.chunk_rows)
    job = ChunkJob(lay, 3 if det.has_feature_scores else 0, ".csv")
    prof = cProfile.Profile()
    rows = 0
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        prof.enable()
        for line, batch in chunks:
            scored = score_chunk(det, job, line, batch)
            sink.write(scored.output)
            rows += scored.rows
        prof.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(prof).stats
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}; "
        f"{path.name}: {rows:,} rows in {total:.1f} s ({rows / total:,.0f} rows/s, one thread of work, profiled)"
    )
    print(f"model: {det.model.architecture}")
    accounted = 0.0
    for part, (file, func) in PARTS.items():
        cum = sum(v[3] for (f, _, name), v in stats.items() if f.endswith(file) and name == func)
        accounted += cum
        print(f"{part:<16} {cum:>7.2f} s  {cum / total:>5.1%}  {rows / cum if cum else float('inf'):>12,.0f} rows/s")
    print(f"{'other':<16} {total - accounted:>7.2f} s  {(total - accounted) / total:>5.1%}")


if __name__ == "__main__":
    main()
