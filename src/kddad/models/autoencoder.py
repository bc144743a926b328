"""The Lightning-trained networks, ``ae`` and ``vae``, behind the :class:`~kddad.models.base.Model` interface.

Fitted by :func:`kddad.models.lightning.fit`; scored with :mod:`kddad.scores` (a VAE's latent
samples in one batched pass per sample draw); saved as a torch state dict loaded with
``weights_only=True``: nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from kddad.config.schema import ScoreConfig
from kddad.errors import KddadError
from kddad.models.base import History, Model
from kddad.models.batches import TensorBatches
from kddad.models.networks import build_network
from kddad.scores import likelihood_scores, mse_scores

WEIGHTS = "network.pt"


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

    @torch.no_grad()
    def score(self, X: np.ndarray, score: ScoreConfig, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Reproducible for a given seed: the latent draws come from a forked, seeded generator."""
        net = self.network.eval()
        samples = score.samples if net.variational else 1
        device = next(net.parameters()).device
        inst, feat = [], []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            for xb in TensorBatches(torch.from_numpy(X).to(device), batch_size):
                out = net(xb, samples=samples) if net.variational else net(xb)
                if score.name == "likelihood":
                    i, f = likelihood_scores(xb, out.mean, out.var)
                else:
                    i, f = mse_scores(xb, out.mean, score.outlier_perc)
                inst.append(i.cpu())
                feat.append(f.cpu())
        return torch.cat(inst).numpy(), torch.cat(feat).numpy()

    @torch.no_grad()
    def latent(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """The encoder's codes (a VAE's posterior mean)."""
        net = self.network.eval()
        return torch.cat([net.encode(xb) for xb in TensorBatches(torch.from_numpy(X), batch_size)]).numpy()

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
