"""The train stage alone and beside a CPU-bound neighbour process: how much a busy machine costs it.

The stage (`python pipelines/train.py`, the project's params.yaml with tracking off) runs in a
scratch copy of the project's encoded data, first alone, then while one pure-Python busy loop
spins in another process, then beside the loop again with the threads given (``--threads``:
``trainer.threads``; default: the stage's own choice). Prints the wall times and their ratio.

Usage (after `make run`): python bench/train_neighbour.py [--params params.yaml] [--threads 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _spin() -> None:
    while True:
        pass


def _stage(folder: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "train.py")], cwd=folder, capture_output=True, text=True
    )
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--threads", type=int, help="trainer.threads for a third run beside the neighbour")
    args = ap.parse_args()
    features = ROOT / "data" / "features"
    if not features.is_dir():
        sys.exit(f"{features}: not found; run `make run` (or `dvc repro encode`) first")
    params = yaml.safe_load(Path(args.params).read_text())
    params["tracking"]["enabled"] = False
    params["trainer"]["enable_progress_bar"] = False
    with tempfile.TemporaryDirectory(prefix="kddad-bench-") as tmp:
        folder = Path(tmp)
        shutil.copytree(features, folder / "data" / "features")
        shutil.copytree(ROOT / "models" / "encoder", folder / "models" / "encoder")
        (folder / "params.yaml").write_text(yaml.safe_dump(params))
        model = params["model"]["name"]
        print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs; model {model}")
        alone = _stage(folder)
        print(f"train stage alone:                {alone:6.1f} s")
        neighbour = mp.get_context("spawn").Process(target=_spin, daemon=True)
        neighbour.start()
        try:
            beside = _stage(folder)
            print(f"beside a busy neighbour:          {beside:6.1f} s  ({beside / alone:.2f}x alone)")
            if args.threads:
                params["trainer"]["threads"] = args.threads
                (folder / "params.yaml").write_text(yaml.safe_dump(params))
                forced = _stage(folder)
                print(f"beside it, trainer.threads={args.threads}:   {forced:6.1f} s  ({forced / alone:.2f}x alone)")
        finally:
            neighbour.kill()


if __name__ == "__main__":
    main()
