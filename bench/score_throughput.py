"""Scoring throughput (rows/s) of the VAE, through ``Autoencoder.score``.

The default fusion's VAE, as ``experiment=plain_vae`` has it (VAE 64-32, latent 8, all41 features), with its initial
weights (scoring costs the same whatever the weights), likelihood score, on the default split's
normal training rows repeated to --rows; on the CPU and, when visible, CUDA. Each figure is the
best of --repeat calls after one warm-up call; a call includes the copy to the device and back,
as the threshold and evaluate stages pay it.

Usage: python bench/score_throughput.py [--devices cpu cuda] [--rows 300000] [--samples 10 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from _data import prepared

from kddad.models.autoencoder import Autoencoder
from kddad.stages.model import load_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--samples", type=int, nargs="+", default=[10, 1], help="latent samples per row (VAE)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg, paths = prepared(["experiment=plain_vae"])  # the VAE: the default fusion's heavier scorer
    train = load_features("train", paths)[0]
    X = np.ascontiguousarray(np.resize(train, (args.rows, train.shape[1])), dtype=np.float32)  # rows repeated
    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
        + (f", {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})" if "cuda" in devices else ", no CUDA")
    )
    print(
        f"network: {cfg.model.architecture}, {cfg.score.name} score; {len(X):,} rows × {X.shape[1]} features; "
        f"best of {args.repeat} after a warm-up"
    )
    print(f"{'device':>6} {'samples':>8} {'rows/s':>12} {'s/call':>8}")
    for device in devices:
        model = Autoencoder(cfg.model, cfg.score, cfg.trainer, cfg.early_stopping, seed=0)
        torch.manual_seed(0)
        model.network = model.build(X.shape[1]).to(device).eval()
        for samples in args.samples:
            model.score_cfg = cfg.score.model_copy(update={"samples": samples})
            model.score(X[:50_000])  # warm-up: kernels, allocator, threads
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                model.score(X)  # returns numpy arrays: the device work is done
                best = min(best, time.perf_counter() - start)
            print(f"{device:>6} {samples:>8} {len(X) / best:>12,.0f} {best:>8.3f}", flush=True)


if __name__ == "__main__":
    main()
