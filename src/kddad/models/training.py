"""The one training loop of the kinds trained by epochs (:class:`~kddad.models.neural.NeuralModel`).

Lightning on in-memory tensors: Adam on the kind's loss, gradient clipping, early stopping on the
validation loss with the best epoch's weights loaded back, a per-epoch history, logging. Nothing
here knows what the loss computes. Batches are slices of one tensor permuted once per epoch
(:mod:`kddad.models.batches`). On a CUDA device each full batch's step replays one CUDA graph
(:mod:`kddad.models.graphed`; ``trainer.cuda_graph``).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from kddad.io import sweep_stale
from kddad.models.base import History
from kddad.models.batches import TensorBatches
from kddad.models.graphed import GraphedStep, graph_blocker
from kddad.threads import computing_on

if TYPE_CHECKING:
    from kddad.models.neural import NeuralModel

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "kddad-ckpt-"
#: validation rows per batch at least (validation has no optimiser step: bigger batches are cheaper)
VAL_BATCH = 8192


class ClosureOptimizer(torch.optim.Optimizer):
    """The optimizer Lightning is given when steps are graphed: ``step(closure)`` just runs the closure.

    The closure is the whole graphed step (forward, backward, clipping and the real fused Adam,
    which the :class:`~kddad.models.graphed.GraphedStep` owns). Stepping through Lightning's
    public ``optimizer.step(closure=…)`` keeps its bookkeeping: ``trainer.global_step`` counts
    every step, and the checkpoints are named and kept by it.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter]) -> None:
        super().__init__(params, defaults={})

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return closure()


class TrainingModule(pl.LightningModule):
    """Adam on ``loss(x)`` (a batch-mean scalar) over ``network``'s parameters; logs ``train_loss``
    and ``val_loss`` (the same loss on the validation rows) once per epoch.

    Manual optimisation: on a tiny network Lightning's automatic-optimisation closure and hooks
    cost a fifth of a step. The LightningOptimizer still handles mixed precision.

    With ``cuda_graph`` on a CUDA device at 32-bit precision, the whole step is one CUDA graph
    replay (:class:`~kddad.models.graphed.GraphedStep`, with a fused, capturable Adam), run as
    the closure of a :class:`ClosureOptimizer`: it calls ``loss.backward()`` and the real Adam
    itself, never Lightning's precision plugin. Anywhere else the step is the eager one below,
    with plain Adam.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        loss: Callable[[torch.Tensor], torch.Tensor],
        *,
        lr: float,
        weight_decay: float = 0.0,
        gradient_clip_val: float | None = None,
        cuda_graph: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.network = network
        self.loss_fn = loss
        self.lr, self.weight_decay = lr, weight_decay
        self.gradient_clip_val = gradient_clip_val
        self.cuda_graph = cuda_graph
        self._epoch: dict[str, Any] = {}  # running sums; a dict, so no nn.Module.__setattr__ per step
        self._graph_optimizer: torch.optim.Optimizer | None = None  # the real Adam of a graphed fit
        self._graphed: GraphedStep | None = None  # the step, from on_train_start to on_train_end

    def _graph_blocker(self) -> str | None:
        """Why this fit's steps run eagerly (None: they are graphed)."""
        trainer = self.trainer
        return graph_blocker(self.device, trainer.precision, self.cuda_graph, trainer.world_size)

    def on_train_start(self) -> None:
        if self._graph_optimizer is not None:
            raw = self._graph_optimizer
            params = [p for group in raw.param_groups for p in group["params"]]
            self._graphed = GraphedStep(self.loss_fn, params, raw, clip=self.gradient_clip_val)

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
            graphed = self._graphed
            return opt.step(closure=lambda: graphed.step(batch))
        loss = self.loss_fn(batch)
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
        self.log("val_loss", self.loss_fn(batch), prog_bar=True, on_epoch=True, batch_size=len(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Plain Adam; when the step is graphed, a fused, capturable one (its step inside the graph)
        kept for the GraphedStep, and a :class:`ClosureOptimizer` for Lightning.

        Lightning calls this after moving the module to its device, so ``self.device`` is final.
        """
        blocker = self._graph_blocker()
        self._graph_optimizer = None
        if blocker is None:
            log.info("training steps: one CUDA graph replay each (fused, capturable Adam)")
            self._graph_optimizer = torch.optim.Adam(
                self.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True, capturable=True
            )
            return ClosureOptimizer(self.parameters())
        if self.cuda_graph and self.device.type == "cuda":
            log.info("training steps: eager, not a CUDA graph: %s", blocker)
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class EpochHistory(Callback):
    """Per-epoch train and validation loss, for the training curve."""

    def __init__(self) -> None:
        self.rows: History = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: TrainingModule) -> None:
        m = trainer.callback_metrics  # validation has run; the module logs train_loss after us
        self.rows.append(
            {
                "epoch": trainer.current_epoch,
                "train_loss": float(module.epoch_train_loss()),
                "val_loss": float(m["val_loss"]) if "val_loss" in m else math.nan,
            }
        )


def fit(
    model: NeuralModel,
    X: torch.Tensor,
    X_val: torch.Tensor,
    *,
    logger: Any = False,
    callbacks: list[Callback] | None = None,
) -> History:
    """Train ``model.network`` (built) in place on ``model.loss``, with early stopping on ``X_val``;
    keeps the best epoch's weights. The model's config gives ``lr`` and ``batch_size``, its
    ``trainer``, ``early_stopping`` and ``seed`` the rest."""
    pl.seed_everything(model.seed, workers=True, verbose=False)
    trainer_cfg, stopping = model.trainer, model.early_stopping
    module = TrainingModule(
        model.network,
        model.loss,
        lr=model.cfg.lr,
        weight_decay=model.weight_decay,
        gradient_clip_val=trainer_cfg.gradient_clip_val,  # applied in the manual step
        cuda_graph=trainer_cfg.cuda_graph,
    )
    history = EpochHistory()
    # a killed training leaves its checkpoint folder behind: the next one sweeps those of dead processes
    sweep_stale(Path(tempfile.gettempdir()), CHECKPOINT_PREFIX)
    with (
        computing_on(trainer_cfg.threads),
        tempfile.TemporaryDirectory(prefix=f"{CHECKPOINT_PREFIX}{os.getpid()}-") as ckpt_dir,
    ):
        best = ModelCheckpoint(dirpath=ckpt_dir, monitor="val_loss", mode="min", save_top_k=1, save_weights_only=True)
        stop = EarlyStopping(monitor="val_loss", mode="min", patience=stopping.patience, min_delta=stopping.min_delta)
        trainer = pl.Trainer(
            **trainer_cfg.model_dump(exclude={"gradient_clip_val", "cuda_graph", "threads"}),  # ours, not the Trainer's
            logger=logger,
            callbacks=[history, best, stop, *(callbacks or [])],
            default_root_dir=ckpt_dir,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        device = trainer.strategy.root_device
        if device.type != "cpu":  # whole data set on the accelerator once: no per-batch copies
            X, X_val = X.to(device), X_val.to(device)
        batch_size = model.cfg.batch_size
        train = TensorBatches(X, batch_size, shuffle=True, seed=model.seed)
        val = TensorBatches(X_val, max(batch_size, VAL_BATCH))
        with warnings.catch_warnings():  # Lightning 2.6 trips over its own torch-2.13 deprecation
            warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
            trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        if best.best_model_path:
            # load_state_dict copies into the existing parameters (copy_), never replaces them; by now
            # the graph is released and Lightning's teardown has moved the module to the CPU anyway
            state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
    model.network.cpu().eval()
    return history.rows
