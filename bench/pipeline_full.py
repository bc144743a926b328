"""Every stage of the pipeline on a file the size of the full KDD Cup 99 set: wall time and peak
resident memory of each stage's process.

The input is the 10% file repeated ``--repeat`` times (10: 4,940,210 rows, gzipped; it stands in
for ``dataset=kddcup99_full``, which cannot be fetched here) through ``dataset=local``. Each
stage's ``cmd`` from dvc.yaml runs as DVC runs it, one after the other, in a scratch copy of the
project's tracked files with params.yaml composed from conf/ and the overrides given (MLflow
tracking on, to a store in the copy, as by default). A stage's peak is the kernel's high-water
mark of its resident memory (``wait4``).

Usage: python bench/pipeline_full.py [--repeat 10] [--stages split encode] [override ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _data import ROOT, big_file


def _copy_project(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        src = ROOT / name
        if src.is_file() and not name.startswith(("bench/", "tests/", "docs/")):
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


def _stage(cmd: str, folder: Path, log: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one stage's process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd.split(), cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{cmd}: exit {proc.returncode}\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--stages", nargs="+", help="run only these (the ones before them still run, untimed)")
    ap.add_argument("--keep", metavar="DIR", help="work here and keep it (default: a temporary folder)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=plain_vae")
    args = ap.parse_args()
    src = big_file(args.repeat)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    size = src.stat().st_size / 2**20
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs; input {src.name} ({size:.0f} MiB)")
    with tempfile.TemporaryDirectory(prefix="kddad-full-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        _copy_project(folder)
        overrides = ["dataset=local", f"dataset.path={src}", "trainer.enable_progress_bar=false", *args.overrides]
        subprocess.run(
            [sys.executable, "-m", "kddad.config", "--write", "params.yaml", *overrides], cwd=folder, check=True
        )
        print("params:", " ".join(overrides))
        for name, stage in stages.items():
            seconds, peak = _stage(stage["cmd"].replace("python", sys.executable, 1), folder, folder / f"{name}.log")
            if args.stages is None or name in args.stages:
                print(f"{name:<10} {seconds:8.1f} s   peak {peak:7,.0f} MiB", flush=True)
        report = yaml.safe_load((folder / "reports" / "split.json").read_text())
        print("split rows:", report["rows"])


if __name__ == "__main__":
    main()
