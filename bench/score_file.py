"""`kddad score` end to end on a big file: rows/s and peak memory of the command as users run it,
at each number of worker processes asked for (a ratio to the first in the same run).

The input is the KDD Cup 99 10% file repeated ``--repeat`` times (10: 4,940,210 rows, gzipped,
as the full data set is distributed), written once under bench/.cache/. The command runs in a
child process; its peak resident memory is that of the command and its worker processes together.

Usage (after `make run`): python bench/score_file.py [--model models/detector] [--repeat 10] [--device auto]
                          [--workers 1 2 0]   (0: the command's default)   [--ray local]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _data import big_file

from kddad.paths import Paths

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(Paths().detector))
    ap.add_argument("--threshold", help="threshold file (default: beside the detector folder)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 0], help="0: the command's default")
    ap.add_argument("--ray", metavar="ADDRESS", help="also score through Ray actors (local: a private instance)")
    ap.add_argument(
        "--one-core", action="store_true", help="first, 1 worker held to core 0 (taskset -c 0): the ratios' base"
    )
    args = ap.parse_args()
    src = big_file(args.repeat)
    out = HERE / ".cache" / "scores.csv"
    kddad = [sys.executable, "-m", "kddad.cli"]  # what the `kddad` console script runs
    cmd = [*kddad, "score", "--model", args.model, "--input", str(src), "--output", str(out)]
    cmd += ["--device", args.device, "--top-k", str(args.top_k), "--no-progress"]
    if args.threshold:
        cmd += ["--threshold", args.threshold]
    size = src.stat().st_size / 2**20
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs; input {src.name} ({size:.0f} MiB)")
    first = None
    runs = [(w, [], None) for w in args.workers] + [(w, ["--ray", args.ray], None) for w in args.workers if args.ray]
    if args.one_core:
        runs.insert(0, (1, [], {0}))
    for workers, ray, cores in runs:
        run = cmd + (["--workers", str(workers)] if workers else []) + ray
        rate, peak_mib, said = _run(run, cores)
        first = first or rate
        label = f"{workers or 'default'}{' on Ray ' + args.ray if ray else ''}{' on core 0' if cores else ''}"
        print(f"workers {label}: kddad says: {said}")
        ratio = rate / first
        print(f"workers {label}: {rate:,.0f} rows/s with start-up, peak memory {peak_mib:,.0f} MiB, {ratio:.2f}x")
    out.unlink(missing_ok=True)


def _run(cmd: list[str], cores: set[int] | None = None) -> tuple[float, float, str]:
    """rows/s (process start included), the peak of the resident memory of the command and its
    worker processes together (sampled every 0.1 s), and its summary line; ``cores``: the CPUs it
    may run on (as ``taskset -c``)."""
    import psutil

    start = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=pin)
    top, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [top, *top.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:  # a process ended between the listing and the reading
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if proc.returncode:
        sys.exit(stderr[-3000:])
    rows = int(stdout.split()[0])
    return rows / seconds, peak / 2**20, stdout.strip()


if __name__ == "__main__":
    main()
