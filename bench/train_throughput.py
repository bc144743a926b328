"""Training throughput (rows/s): the Lightning training beside a bare PyTorch loop.

Same network (alibi-detect's VAE, 18-20-15-7, latent 2), same data (the default split's
normal training rows, alibi18, standard scaling), same batch size, same loss, same optimiser,
same way of batching (one permutation per epoch, contiguous slices), in one run.

Usage: python bench/train_throughput.py [--epochs 3] [--batch-sizes 128 1024]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings

import pytorch_lightning as pl
import torch
from _data import prepared

from kddad.models.batches import TensorBatches
from kddad.models.lightning import ReconstructionModule, reconstruction_loss
from kddad.models.networks import build_network
from kddad.stages.model import load_features


def network(n: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(
        "vae",
        n,
        gaussian=False,
        min_var=1e-3,
        hidden=[20, 15, 7],
        latent=2,
        activation="relu",
        output_activation="linear",
        dropout=0.0,
        batch_norm=False,
    )


def bare(X: torch.Tensor, batch_size: int, epochs: int) -> float:
    net = network(X.shape[1]).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = TensorBatches(X, batch_size, shuffle=True)
    start = time.perf_counter()
    for _ in range(epochs):
        total, rows = torch.zeros(()), 0  # the epoch's loss, as any real loop reports it
        for xb in batches:
            loss = reconstruction_loss(net, xb, likelihood=False, beta=1.0, recon_std=0.01)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * len(xb)
            rows += len(xb)
        float(total / rows)
    return epochs * len(X) / (time.perf_counter() - start)


def lightning(X: torch.Tensor, batch_size: int, epochs: int) -> float:
    module = ReconstructionModule(network(X.shape[1]), likelihood=False, lr=1e-3)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=TensorBatches(X, batch_size, shuffle=True))
    return epochs * len(X) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 1024])
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of each; the best counts")
    args = ap.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    _, paths = prepared(["features=alibi18", "scaling=standard"])  # as documented, whatever the default
    X = torch.from_numpy(load_features("train", paths)[0])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Lightning {pl.__version__}"
    )
    print(
        f"data: {X.shape[0]} rows × {X.shape[1]} features, {args.epochs} epochs a run, best of "
        f"{args.repeat} interleaved runs, after a 1-epoch warm-up"
    )
    print(f"{'batch':>6} {'bare rows/s':>13} {'Lightning rows/s':>17} {'ratio':>6}")
    for bs in args.batch_sizes:
        bare(X, bs, 1), lightning(X, bs, 1)  # warm-up
        runs = [(bare(X, bs, args.epochs), lightning(X, bs, args.epochs)) for _ in range(args.repeat)]
        b, lt = max(r[0] for r in runs), max(r[1] for r in runs)  # best of interleaved runs
        print(f"{bs:>6} {b:>13,.0f} {lt:>17,.0f} {lt / b:>6.2f}")


if __name__ == "__main__":
    main()
