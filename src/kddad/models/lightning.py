"""Lightning training of a reconstruction network on in-memory tensors.

Batches are slices of one tensor permuted once per epoch: on this data a per-row TensorDataset
with default collation reached about half the throughput of a bare loop. On a CUDA device each
full batch's step replays one CUDA graph (:mod:`kddad.models.graphed`; ``trainer.cuda_graph``).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from kddad.io import sweep_stale
from kddad.models.batches import TensorBatches
from kddad.models.graphed import GraphedStep, graph_blocker
from kddad.models.scores import gaussian_log_prob

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "kddad-ckpt-"


def reconstruction_loss(
    network: torch.nn.Module, x: torch.Tensor, *, likelihood: bool, beta: float, recon_std: float
) -> torch.Tensor:
    """Training objective, averaged over the batch.

    AE + mse: mean squared error. AE + likelihood: Gaussian NLL with the learned variance.
    VAE: negative ELBO; the reconstruction term is the Gaussian NLL with the learned variance
    (likelihood) or with a fixed standard deviation ``recon_std`` (mse; alibi-detect's ``sim``).
    """
    out = network(x)
    if not network.variational:
        if not likelihood:
            return torch.mean((out.mean - x) ** 2)
        return -gaussian_log_prob(x, out.mean, out.var).sum(-1).mean()
    mean = out.mean[0]
    var = out.var[0] if likelihood else torch.full_like(mean, recon_std**2)
    nll = -gaussian_log_prob(x, mean, var).sum(-1)
    kl = -0.5 * torch.sum(1 + out.z_logvar - out.z_mean**2 - out.z_logvar.exp(), dim=-1)
    return (nll + beta * kl).mean()


class ReconstructionModule(pl.LightningModule):
    """Adam on ``reconstruction_loss``; logs ``train_loss`` and ``val_loss`` once per epoch.

    Manual optimisation: on this tiny network Lightning's automatic-optimisation closure and
    hooks cost a fifth of a step. The LightningOptimizer still handles mixed precision.

    With ``cuda_graph`` on a CUDA device at 32-bit precision, the whole step is one CUDA graph
    replay (:class:`~kddad.models.graphed.GraphedStep`, with a fused, capturable Adam); it calls
    the raw optimizer and ``loss.backward()``, never Lightning's precision plugin. Anywhere else
    the step is the eager one below, with plain Adam (CPU results unchanged).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        likelihood: bool,
        lr: float,
        beta: float = 1.0,
        recon_std: float = 0.01,
        gradient_clip_val: float | None = None,
        cuda_graph: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.network = network
        self.likelihood, self.lr, self.beta, self.recon_std = likelihood, lr, beta, recon_std
        self.gradient_clip_val = gradient_clip_val
        self.cuda_graph = cuda_graph
        self._epoch: dict[str, Any] = {}  # running sums; a dict, so no nn.Module.__setattr__ per step
        self._graph_steps = False  # decided in configure_optimizers, once the device is known
        self._graphed: GraphedStep | None = None  # the step, from on_train_start to on_train_end

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(
            self.network, x, likelihood=self.likelihood, beta=self.beta, recon_std=self.recon_std
        )

    def _graph_blocker(self) -> str | None:
        """Why this fit's steps run eagerly (None: they are graphed)."""
        trainer = self._trainer
        precision, world_size = (trainer.precision, trainer.world_size) if trainer is not None else ("32-true", 1)
        return graph_blocker(self.device, precision, self.cuda_graph, world_size)

    def on_train_start(self) -> None:
        if self._graph_steps:
            raw = self.optimizers().optimizer
            params = [p for group in raw.param_groups for p in group["params"]]
            self._graphed = GraphedStep(self.loss, params, raw, clip=self.gradient_clip_val)

    def on_train_end(self) -> None:
        if self._graphed is not None:  # before Lightning's teardown moves the parameters to the CPU
            self._graphed.release()
            self._graphed = None

    def on_train_epoch_start(self) -> None:
        # the LightningOptimizer once an epoch, not a lookup every step
        self._epoch = {"sum": torch.zeros((), device=self.device), "rows": 0, "opt": self.optimizers()}
        if self._graphed is not None:
            self._graphed.reset()

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        opt = self._epoch["opt"]
        if self._graphed is not None:
            # Lightning's own step callbacks, as LightningOptimizer.step runs them: global_step counts steps
            opt._on_before_step()
            loss = self._graphed.step(batch)
            opt._on_after_step()
            return loss
        loss = self.loss(batch)
        opt.zero_grad()
        self.manual_backward(loss)
        if self.gradient_clip_val:
            self.clip_gradients(opt, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
        opt.step()
        self._epoch["sum"] += loss.detach() * len(batch)
        self._epoch["rows"] += len(batch)
        return loss

    def epoch_train_loss(self) -> torch.Tensor:
        """Mean training loss of the epoch so far (callbacks' on_train_epoch_end runs before ours)."""
        if self._graphed is not None:
            return self._graphed.mean_loss()
        return self._epoch["sum"] / max(self._epoch["rows"], 1)

    def on_train_epoch_end(self) -> None:
        self.log("train_loss", self.epoch_train_loss(), prog_bar=True)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val_loss", self.loss(batch), prog_bar=True, on_epoch=True, batch_size=len(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Plain Adam; fused and capturable (its step inside the graph) when the step is graphed.

        Lightning calls this after moving the module to its device, so ``self.device`` is final.
        """
        blocker = self._graph_blocker()
        self._graph_steps = blocker is None
        if blocker is None:
            log.info("training steps: one CUDA graph replay each (fused, capturable Adam)")
            return torch.optim.Adam(self.parameters(), lr=self.lr, fused=True, capturable=True)
        if self.cuda_graph and self.device.type == "cuda":
            log.info("training steps: eager, not a CUDA graph: %s", blocker)
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class History(Callback):
    """Per-epoch train and validation loss, for the training curve."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        m = trainer.callback_metrics  # validation has run; the module logs train_loss after us
        self.rows.append(
            {
                "epoch": trainer.current_epoch,
                "train_loss": float(module.epoch_train_loss()),
                "val_loss": float(m["val_loss"]) if "val_loss" in m else math.nan,
            }
        )


def fit(
    network: torch.nn.Module,
    X: torch.Tensor,
    X_val: torch.Tensor,
    *,
    likelihood: bool,
    lr: float,
    batch_size: int,
    beta: float,
    recon_std: float,
    seed: int,
    trainer_args: dict[str, Any],
    patience: int,
    min_delta: float = 0.0,
    logger: Any = False,
    callbacks: list[Callback] | None = None,
) -> list[dict[str, float]]:
    """Train ``network`` in place with early stopping on ``X_val``; keeps the best epoch's weights."""
    pl.seed_everything(seed, workers=True, verbose=False)
    trainer_args = dict(trainer_args)
    clip = trainer_args.pop("gradient_clip_val", None)  # applied in the manual step
    cuda_graph = trainer_args.pop("cuda_graph", True)  # ours, not a Trainer argument
    module = ReconstructionModule(
        network,
        likelihood=likelihood,
        lr=lr,
        beta=beta,
        recon_std=recon_std,
        gradient_clip_val=clip,
        cuda_graph=cuda_graph,
    )
    history = History()
    # a killed training leaves its checkpoint folder behind: the next one sweeps those of dead processes
    sweep_stale(Path(tempfile.gettempdir()), CHECKPOINT_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{CHECKPOINT_PREFIX}{os.getpid()}-") as ckpt_dir:
        best = ModelCheckpoint(dirpath=ckpt_dir, monitor="val_loss", mode="min", save_top_k=1, save_weights_only=True)
        stop = EarlyStopping(monitor="val_loss", mode="min", patience=patience, min_delta=min_delta)
        trainer = pl.Trainer(
            **trainer_args,
            logger=logger,
            callbacks=[history, best, stop, *(callbacks or [])],
            default_root_dir=ckpt_dir,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        device = trainer.strategy.root_device
        if device.type != "cpu":  # whole data set on the accelerator once: no per-batch copies
            X, X_val = X.to(device), X_val.to(device)
        train = TensorBatches(X, batch_size, shuffle=True, seed=seed)
        val = TensorBatches(X_val, max(batch_size, 8192))
        with warnings.catch_warnings():  # Lightning 2.6 trips over its own torch-2.13 deprecation
            warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
            trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        if best.best_model_path:
            # load_state_dict copies into the existing parameters (copy_), never replaces them; by now
            # the graph is released and Lightning's teardown has moved the module to the CPU anyway
            state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
    network.cpu().eval()
    return history.rows
