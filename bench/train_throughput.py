"""Training throughput (rows/s): the Lightning training beside a bare PyTorch loop, eager and graphed.

Same network, data (the default split's normal training rows), batch size, loss, optimiser and
batching (one permutation per epoch, contiguous slices) in one run. On CUDA each is timed twice:
eager, and with the whole step as one CUDA graph replay (kddad.models.graphed; in Lightning,
``trainer.cuda_graph``). Rows/s over the epochs after the first (which holds Lightning's set-up,
the warm-up and the capture), the device synchronised at each end; best of interleaved runs.

--network vae: the VAE of the default fusion, as ``experiment=plain_vae`` has it (VAE 64-32,
latent 8, all41 features, likelihood loss, standard scaling). --network alibi: alibi-detect's
VAE (18-20-15-7, latent 2, alibi18 features, mse loss), the configuration of the CPU figures in
bench/README.md before the graphed step.

Usage: python bench/train_throughput.py [--accelerator cpu|cuda] [--network vae|alibi]
       [--epochs 3] [--batch-sizes 128 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from _data import prepared
from pytorch_lightning.callbacks import Callback

from kddad.config import Config
from kddad.models.autoencoder import Autoencoder
from kddad.models.batches import TensorBatches
from kddad.models.graphed import GraphedStep
from kddad.models.training import TrainingModule
from kddad.stages.model import load_features

NETWORKS = {
    "vae": ["experiment=plain_vae"],  # the default's VAE member's network, on the plain encoding
    "alibi": ["features=alibi18", "scaling=standard", "model=alibi_vae", "score=mse"],
}


def model(cfg: Config, n: int, device: torch.device) -> Autoencoder:
    """The configured model with a fresh network (seed 0) on ``device``: its ``loss`` is the one trained."""
    m = Autoencoder(cfg.model, cfg.score, cfg.trainer, cfg.early_stopping)
    torch.manual_seed(0)
    m.network = m.build(n).to(device)
    return m


class Clock:
    """Wall time of each epoch, the device synchronised at both ends."""

    def __init__(self, device: torch.device) -> None:
        self.cuda, self.times, self.t0 = device.type == "cuda", [], 0.0

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.t0)

    def rate(self, rows: int) -> float:
        """Rows/s over the epochs after the first."""
        timed = self.times[1:]
        return rows * len(timed) / sum(timed)


class EpochClock(Callback):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.clock.start()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.clock.stop()  # callbacks run before the module's hook (its epoch log)


def bare(cfg: Config, X: torch.Tensor, batch_size: int, epochs: int, graph: bool) -> float:
    """The loop without Lightning; graph: each full batch one CUDA graph replay (fused, capturable Adam)."""
    m = model(cfg, X.shape[1], X.device)
    net = m.network.train()
    extra = {"fused": True, "capturable": True} if graph else {}
    opt = torch.optim.Adam(net.parameters(), lr=cfg.model.lr, **extra)
    step = GraphedStep(m.loss, net.parameters(), opt, graph=graph)
    batches = TensorBatches(X, batch_size, shuffle=True)
    clock = Clock(X.device)
    for _ in range(epochs + 1):
        clock.start()
        step.reset()
        for xb in batches:
            step.step(xb)
        float(step.mean_loss())  # the epoch's loss, as any real loop reports it
        clock.stop()
    return clock.rate(len(X))


def lightning(cfg: Config, X: torch.Tensor, batch_size: int, epochs: int, graph: bool) -> float:
    m = model(cfg, X.shape[1], torch.device("cpu"))
    module = TrainingModule(m.network, m.loss, lr=cfg.model.lr, cuda_graph=graph)
    clock = Clock(X.device)
    trainer = pl.Trainer(
        max_epochs=epochs + 1,
        accelerator=X.device.type,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[EpochClock(clock)],
    )
    trainer.fit(module, train_dataloaders=TensorBatches(X, batch_size, shuffle=True))
    return clock.rate(len(X))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelerator", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--network", choices=sorted(NETWORKS), default="vae")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs a run, after one untimed")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of each; the best counts")
    args = ap.parse_args()
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cuda = args.accelerator == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--accelerator cuda: no CUDA device visible")
    cfg, paths = prepared(NETWORKS[args.network])
    device = torch.device(args.accelerator)
    X = torch.from_numpy(load_features("train", paths)[0]).to(device)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Lightning {pl.__version__}"
        + (f", {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})" if cuda else "")
    )
    print(
        f"network: {cfg.model.architecture}, {cfg.score.name} loss ({args.network}); data: {X.shape[0]} rows × "
        f"{X.shape[1]} features on {args.accelerator}; {args.epochs} timed epochs a run after 1 untimed, "
        f"best of {args.repeat} interleaved runs"
    )
    runs: dict[str, Callable[[int], float]] = {
        "bare eager": lambda bs: bare(cfg, X, bs, args.epochs, graph=False),
        "Lightning eager": lambda bs: lightning(cfg, X, bs, args.epochs, graph=False),
    }
    if cuda:
        runs["bare graphed"] = lambda bs: bare(cfg, X, bs, args.epochs, graph=True)
        runs["Lightning graphed"] = lambda bs: lightning(cfg, X, bs, args.epochs, graph=True)
    header = f"{'batch':>6}" + "".join(f" {name + ' rows/s':>24}" for name in runs) + f" {'L/bare eager':>13}"
    if cuda:
        header += f" {'L/bare graphed':>15} {'L graphed/eager':>16}"
    print(header)
    for bs in args.batch_sizes:
        best = {name: 0.0 for name in runs}
        for _ in range(args.repeat):
            for name, run in runs.items():
                best[name] = max(best[name], run(bs))
        row = f"{bs:>6}" + "".join(f" {best[name]:>24,.0f}" for name in runs)
        row += f" {best['Lightning eager'] / best['bare eager']:>13.2f}"
        if cuda:
            row += f" {best['Lightning graphed'] / best['bare graphed']:>15.2f}"
            row += f" {best['Lightning graphed'] / best['Lightning eager']:>16.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
