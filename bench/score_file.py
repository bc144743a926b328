"""`kddad score` end to end on a big file: rows/s and peak memory of the command as users run it.

The input is the KDD Cup 99 10% file repeated ``--repeat`` times (10: 4,940,210 rows, gzipped,
as the full data set is distributed), written once under bench/.cache/. The command runs in a
child process; its peak resident memory comes from the kernel's accounting of that child.

Usage (after `make run`): python bench/score_file.py [--model models/detector] [--repeat 10] [--device auto]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from kddad.paths import Paths

HERE = Path(__file__).resolve().parent
KDD10 = "kddcup.data_10_percent.gz"


def big_file(repeat: int) -> Path:
    mirror = Path(os.environ.get("KDDAD_DATA_MIRROR", HERE.parent.parent / "shared" / "data"))
    dst = HERE / ".cache" / f"kdd10x{repeat}.gz"
    if not dst.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = gzip.decompress((mirror / KDD10).read_bytes())
        tmp = dst.with_suffix(".tmp")
        with gzip.open(tmp, "wb", compresslevel=1) as f:
            for _ in range(repeat):
                f.write(data)
        tmp.replace(dst)
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(Paths().detector))
    ap.add_argument("--threshold", help="threshold file (default: beside the detector folder)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--top-k", type=int, default=3)
    args = ap.parse_args()
    src = big_file(args.repeat)
    out = HERE / ".cache" / "scores.csv"
    kddad = [sys.executable, "-m", "kddad.cli"]  # what the `kddad` console script runs
    cmd = [*kddad, "score", "--model", args.model, "--input", str(src), "--output", str(out)]
    cmd += ["--device", args.device, "--top-k", str(args.top_k), "--no-progress"]
    if args.threshold:
        cmd += ["--threshold", args.threshold]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    rows = int(proc.stdout.split()[0])
    size = src.stat().st_size / 2**20
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; input {src.name} ({size:.0f} MiB)")
    print(f"kddad says: {proc.stdout.strip()}")
    print(
        f"{rows:,} rows in {seconds:.1f} s (process start included): {rows / seconds:,.0f} rows/s, "
        f"peak memory {peak_mib:,.0f} MiB"
    )
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
