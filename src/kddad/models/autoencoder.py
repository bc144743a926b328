"""The Lightning-trained networks, ``ae`` and ``vae``, behind the :class:`~kddad.models.base.Model` interface.

Fitted by :func:`kddad.models.lightning.fit`; scored with :mod:`kddad.models.scores` (a VAE's L latent
samples decoded in one batched pass, with draws shared by every row); saved as a torch state dict loaded with
``weights_only=True``: nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from kddad.errors import KddadError
from kddad.models.base import History, Model
from kddad.models.batches import TensorBatches
from kddad.models.networks import build_network
from kddad.models.scores import likelihood_scores, mse_scores

WEIGHTS = "network.pt"


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


class Autoencoder(Model):
    """An autoencoder (``ae``) or variational autoencoder (``vae``); ``network`` is the torch module."""

    network: torch.nn.Module | None = None

    def build(self, n_features: int) -> torch.nn.Module:
        """A fresh network for ``n_features`` inputs, from the config (seeded by the caller)."""
        m = self.cfg
        return build_network(
            m.name,
            n_features,
            gaussian=self.score_cfg.name == "likelihood",
            min_var=self.score_cfg.min_var,
            hidden=m.hidden,
            latent=m.latent,
            activation=m.activation,
            output_activation=m.output_activation,
            dropout=m.dropout,
            batch_norm=m.batch_norm,
        )

    def fit(self, X: np.ndarray, X_val: np.ndarray, *, logger: Any = False, callbacks: list | None = None) -> History:
        from kddad.models import lightning  # Lightning only to train: a stage that scores starts faster

        torch.manual_seed(self.seed)
        self.network = self.build(X.shape[1])
        m = self.cfg
        return lightning.fit(
            self.network,
            torch.from_numpy(X),
            torch.from_numpy(X_val),
            likelihood=self.score_cfg.name == "likelihood",
            lr=m.lr,
            batch_size=m.batch_size,
            beta=m.beta,
            recon_std=m.recon_std,
            seed=self.seed,
            trainer_args=self.trainer.model_dump(),
            patience=self.early_stopping.patience,
            min_delta=self.early_stopping.min_delta,
            logger=logger,
            callbacks=callbacks,
        )

    def to(self, device: str) -> Autoencoder:
        """Move the network to ``device`` (``auto``: CUDA, else Apple's MPS, else CPU)."""
        self.network.to(resolve_device(device))
        return self

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def latent_draws(self, samples: int) -> torch.Tensor:
        """The L standard-normal draws every row's score uses, (L, 1, latent), from the seed.

        Shared by all rows (common random numbers): a row's score is a function of the row alone,
        the same whether it is scored alone, in a file of millions, or on another device.
        """
        latent = self.network.z_mean.out_features
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randn((samples, 1, latent), generator=gen).to(self.device)

    @torch.no_grad()
    def score(self, X: np.ndarray, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scored where the network is; the same scores (to float tolerance) on any device.

        The rows go to the device once and the scores come back once (no copy per batch);
        ``batch_size``: rows per pass, by default 4,096 on a CPU (fastest here: the (L, B, n)
        intermediates stay in cache) and 65,536 on an accelerator.
        """
        net, score = self.network.eval(), self.score_cfg
        device = self.device
        bs = batch_size or (4096 if device.type == "cpu" else 1 << 16)
        eps = self.latent_draws(score.samples) if net.variational else None
        Xt = torch.from_numpy(np.ascontiguousarray(X)).to(device)
        inst = torch.empty(len(X), device=device)
        feat = torch.empty(X.shape, device=device)
        for start in range(0, len(X), bs):
            xb = Xt[start : start + bs]
            out = net(xb, samples=score.samples, eps=eps) if net.variational else net(xb)
            if score.name == "likelihood":
                i, f = likelihood_scores(xb, out.mean, out.var)
            else:
                i, f = mse_scores(xb, out.mean, score.outlier_perc)
            inst[start : start + len(xb)] = i
            feat[start : start + len(xb)] = f
        return inst.cpu().numpy(), feat.cpu().numpy()

    @torch.no_grad()
    def latent(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """The encoder's codes (a VAE's posterior mean)."""
        net = self.network.eval()
        batches = TensorBatches(torch.from_numpy(np.ascontiguousarray(X)), batch_size)
        return torch.cat([net.encode(xb.to(self.device)).cpu() for xb in batches]).numpy()

    def save(self, folder: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, folder / WEIGHTS)

    def load(self, folder: Path, n_features: int) -> Autoencoder:
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
