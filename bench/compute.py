"""What scoring a row costs each model kind, against what this CPU's matrix products can do.

For each configuration (``NAME=OVERRIDES`` of conf/; the default list covers every model kind and
the default before and after it was made lean), on the default split's encoded rows:

- ``MMAC/row``: multiply-adds per scored row, counted by torch's own ``FlopCounterMode`` over one
  scoring batch (PCA: its projection and reconstruction, counted by hand; IsolationForest: no
  multiply-adds, its trees compare);
- ``roofline rows/s``: the same matrix products alone (every ``mm``/``addmm``/``bmm`` one batch
  runs, recorded by a dispatch mode and replayed on random tensors of their shapes), the most a
  row could cost at this CPU's matmul speed, with the GFLOP/s they reach;
- ``model rows/s``: ``Model.score`` on ``--rows`` rows (copies, activations, the score itself
  included), on ``--threads`` torch threads; ``share``: the roofline's part of the model's time.

Scoring costs the same whatever the weights, so the networks keep their initial weights (the
estimators and a fusion's calibration are fitted on the training rows: seconds).

Usage: python bench/compute.py [--rows 200000] [--threads 2 1] [--config "NAME=OVERRIDES"]...
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np
import torch
from _data import prepared
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from kddad.models.base import Model, model_class
from kddad.models.estimator import Estimator
from kddad.models.fusion import Fusion
from kddad.models.neural import SCORE_BATCH, NeuralModel
from kddad.stages.model import load_features

CONFIGS = {
    "default": [],
    "default before (VAE 10 draws, NeuTraL AD's KDD network)": ["experiment=fusion_kdd"],
    "VAE, 10 draws (experiment=plain_vae)": ["experiment=plain_vae"],
    "VAE, posterior mean": ["experiment=plain_vae", "score.samples=0"],
    "AE (model=ae)": ["model=ae"],
    "NeuTraL AD, KDD network (model=neutral_kdd)": ["model=neutral_kdd"],
    "NeuTraL AD (model=neutral)": ["model=neutral"],
    "Deep SVDD": ["model=deep_svdd"],
    "PCA": ["model=pca"],
    "IsolationForest": ["model=iforest"],
}
MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


def ready(model: Model, X: np.ndarray, X_val: np.ndarray) -> Model:
    """A model that can score: networks built with initial weights, estimators and calibrations fitted."""
    if isinstance(model, Fusion):
        for member in model.members_.values():
            ready(member, X, X_val)
        model.calibrate(X_val)
    elif isinstance(model, NeuralModel):
        torch.manual_seed(0)
        model.network = model.build(X.shape[1]).eval()
        model.prepare(torch.from_numpy(X))
    elif isinstance(model, Estimator):
        model.fit(X, X_val)
    return model


class Matmuls(TorchDispatchMode):
    """Records the shapes of every matrix product run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, list[torch.Size]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATMULS:
            self.calls.append((func, [a.shape for a in args if isinstance(a, torch.Tensor)]))
        return func(*args, **(kwargs or {}))


def roofline(calls: list[tuple[Any, list[torch.Size]]], repeat: int = 20) -> float:
    """Seconds the recorded matrix products take alone, on random tensors of their shapes (best of ``repeat``)."""
    ops = [(func, [torch.randn(s) for s in shapes]) for func, shapes in calls]
    for func, tensors in ops:
        func(*tensors)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for func, tensors in ops:
            func(*tensors)
        best = min(best, time.perf_counter() - start)
    return best


def macs_per_row(model: Model, X: np.ndarray, cfg: Any) -> float:
    if cfg.model.name == "pca":  # scikit-learn: project onto k components and back
        return 2 * X.shape[1] * model.estimator.n_components_
    if cfg.model.name == "iforest":
        return 0.0
    counter = FlopCounterMode(display=False)
    with counter:
        model.score(X)
    return counter.get_total_flops() / 2 / len(X)


def model_rate(model: Model, X: np.ndarray, threads: int) -> float:
    torch.set_num_threads(threads)
    model.score(X[:20_000])  # warm-up
    start = time.perf_counter()
    model.score(X)
    return len(X) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--config", action="append", metavar="NAME=OVERRIDES")
    args = ap.parse_args()
    configs = dict(c.split("=", 1) for c in args.config) if args.config else None
    configs = {k: v.split() for k, v in configs.items()} if configs else CONFIGS
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
        f"{args.rows:,} rows, scoring batch {SCORE_BATCH['cpu']:,} on the CPU"
    )
    rates = " ".join(f"{f'model rows/s @{t}':>17}" for t in args.threads)
    print(f"{'configuration':<56} {'MMAC/row':>8} {'roofline rows/s':>16} {'GFLOP/s':>8} {rates} {'share':>6}")
    for name, overrides in configs.items():
        cfg, paths = prepared(overrides)
        train, val = load_features("train", paths)[0], load_features("val", paths)[0]
        X = np.ascontiguousarray(np.resize(train, (args.rows, train.shape[1])), dtype=np.float32)
        model = ready(model_class(cfg.model)(cfg.model, cfg.score, cfg.trainer, cfg.early_stopping, 0), train, val)
        torch.set_num_threads(max(args.threads))
        macs = macs_per_row(model, X[: SCORE_BATCH["cpu"]], cfg)
        batch = X[: SCORE_BATCH["cpu"]]
        with Matmuls() as rec, torch.no_grad():
            model.score(batch)
        ceiling = roofline(rec.calls) if rec.calls else float("nan")
        measured = [model_rate(model, X, t) for t in args.threads]
        roof_rate = len(batch) / ceiling
        gflops = 2 * macs * len(batch) / ceiling / 1e9 if rec.calls else float("nan")
        cols = " ".join(f"{r:>17,.0f}" for r in measured)
        share = measured[0] / roof_rate if rec.calls else float("nan")
        print(f"{name:<56} {macs / 1e6:>8.3f} {roof_rate:>16,.0f} {gflops:>8.1f} {cols} {share:>6.0%}", flush=True)


if __name__ == "__main__":
    main()
