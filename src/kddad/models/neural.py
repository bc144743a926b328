"""The base of the model kinds trained by epochs: a torch network, the shared loop, device scoring.

A kind implements three hooks (:meth:`NeuralModel.build`, :meth:`NeuralModel.loss`,
:meth:`NeuralModel.score_batch`) and, if it needs them, :meth:`NeuralModel.prepare` (set-up from
the training rows) and :meth:`NeuralModel.score_state` (what every batch of one scoring call
shares). Fitting, scoring on a device, moving, saving and loading are written here once; the
training loop itself is :func:`kddad.models.training.fit` (Lightning, imported only to train: a
stage that only scores starts faster). Weights are saved as a torch state dict loaded with
``weights_only=True``: nothing is unpickled.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kddad.errors import KddadError
from kddad.models.base import History, Model
from kddad.models.batches import TensorBatches

WEIGHTS = "network.pt"
#: rows per scoring pass on a CPU (the intermediates stay in cache) and on an accelerator
SCORE_BATCH = {"cpu": 4096, "accelerator": 1 << 16}


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA if torch sees one, else Apple's MPS, else the CPU; a named device must exist."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise KddadError(f"device {device!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise KddadError(f"device {device!r}: torch {torch.__version__} sees no CUDA device here; use cpu or auto")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise KddadError(f"device {device!r}: no Apple MPS device here; use cpu or auto")
    return dev


class NeuralModel(Model):
    """A kind whose state is one torch network (``network``), trained by the shared loop.

    Its config carries ``lr`` and ``batch_size``; ``trainer`` and ``early_stopping`` drive the loop.
    A kind with ``has_latent`` gives its network an ``encode(x)`` method (the codes of :meth:`latent`).
    """

    network: torch.nn.Module | None = None

    # -- the hooks a kind implements ------------------------------------------------------
    @abstractmethod
    def build(self, n_features: int) -> torch.nn.Module:
        """A fresh network for ``n_features`` inputs, from the config (seeded by the caller)."""

    @abstractmethod
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The training objective of batch ``x``, averaged over the batch (a scalar); also the
        validation loss early stopping watches."""

    @abstractmethod
    def score_batch(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(instance scores (B,), feature scores (B, n), or (B, 0) without ``has_feature_scores``)
        of batch ``x`` on the network's device, without autograd; ``state``: :meth:`score_state`."""

    def prepare(self, X: torch.Tensor) -> None:
        """Set-up from the training rows once the network is built, before the first epoch."""

    def score_state(self) -> Any:
        """What every batch of one :meth:`score` call shares (on the network's device); None: nothing.

        It must not depend on the rows scored: a row's score is a function of the row alone.
        """
        return None

    @property
    def weight_decay(self) -> float:
        """Adam's L2 penalty; a kind whose config sets one overrides this."""
        return 0.0

    # -- written once ---------------------------------------------------------------------
    def fit(self, X: np.ndarray, X_val: np.ndarray, *, logger: Any = False, callbacks: list | None = None) -> History:
        from kddad.models import training  # Lightning only to train: a stage that scores starts faster

        torch.manual_seed(self.seed)
        self.network = self.build(X.shape[1])
        X_t = torch.from_numpy(X)
        self.prepare(X_t)
        return training.fit(self, X_t, torch.from_numpy(X_val), logger=logger, callbacks=callbacks)

    def to(self, device: str) -> NeuralModel:
        """Move the network to ``device`` (``auto``: CUDA, else Apple's MPS, else CPU)."""
        self.network.to(resolve_device(device))
        return self

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.no_grad()
    def score(self, X: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scored where the network is; the same scores (to float tolerance) on any device.

        The rows go to the device once and the scores come back once (no copy per batch);
        ``batch_size``: rows per pass, by default :data:`SCORE_BATCH`.
        """
        self.network.eval()
        device = self.device
        bs = batch_size or SCORE_BATCH["cpu" if device.type == "cpu" else "accelerator"]
        state = self.score_state()
        Xt = torch.from_numpy(np.ascontiguousarray(X)).to(device)
        inst = torch.empty(len(X), device=device)
        feat = torch.empty((len(X), X.shape[1] if self.has_feature_scores else 0), device=device)
        for start in range(0, len(X), bs):
            xb = Xt[start : start + bs]
            inst[start : start + len(xb)], feat[start : start + len(xb)] = self.score_batch(xb, state)
        return inst.cpu().numpy(), feat.cpu().numpy()

    @torch.no_grad()
    def latent(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        if not self.has_latent:
            return super().latent(X)
        net = self.network.eval()
        batches = TensorBatches(torch.from_numpy(np.ascontiguousarray(X)), batch_size)
        return torch.cat([net.encode(xb.to(self.device)).cpu() for xb in batches]).numpy()

    def save(self, folder: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, folder / WEIGHTS)

    def load(self, folder: Path, n_features: int) -> NeuralModel:
        """Refuses weights files holding anything but tensors, or tensors that do not fit the network."""
        file = folder / WEIGHTS
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError for anything that is not plain tensors
            raise KddadError(
                f"{file}: refusing to load: not a plain tensor state dict "
                f"({type(err).__name__}: {str(err).splitlines()[0]})"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise KddadError(f"{file}: expected a mapping of parameter names to tensors")
        self.network = self.build(n_features)
        try:
            self.network.load_state_dict(state)
        except RuntimeError as err:
            raise KddadError(f"{file}: does not fit the network the detector description sets out: {err}") from None
        self.network.eval()
        return self
