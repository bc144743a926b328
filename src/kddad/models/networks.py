"""Plain torch networks: an autoencoder and a variational autoencoder built from config.

The decoder outputs a mean per feature and, for the likelihood score, a variance bounded below
by ``min_var`` (so the likelihood cannot run away by shrinking the variance to zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

LOGVAR_MAX = 20.0  # latent log-variance ceiling (std e^10); trained VAEs stay below 3 on KDD rows
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU, "tanh": nn.Tanh}


def mlp(sizes: Sequence[int], activation: str, dropout: float = 0.0, batch_norm: bool = False) -> nn.Sequential:
    """Dense layers ``sizes[0] → … → sizes[-1]``, each followed by [batch norm], activation, [dropout]."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(n_in, n_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Reconstruction(NamedTuple):
    """Decoder output; with latent samples the tensors carry a leading sample axis (L, B, n)."""

    mean: torch.Tensor
    var: torch.Tensor | None
    z_mean: torch.Tensor | None = None
    z_logvar: torch.Tensor | None = None
    z: torch.Tensor | None = None


class Decoder(nn.Module):
    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        latent: int,
        activation: str,
        output_activation: str,
        dropout: float,
        batch_norm: bool,
        gaussian: bool,
        min_var: float,
    ) -> None:
        super().__init__()
        widths = [latent, *reversed(hidden)]
        self.body = mlp(widths, activation, dropout, batch_norm)
        self.mean = nn.Linear(widths[-1], n_features)
        self.var = nn.Linear(widths[-1], n_features) if gaussian else None
        self.sigmoid = output_activation == "sigmoid"
        self.min_var = min_var

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = z.shape[:-1]
        h = self.body(z.reshape(-1, z.shape[-1]))
        mean = self.mean(h)
        if self.sigmoid:
            mean = torch.sigmoid(mean)
        var = None if self.var is None else self.min_var + F.softplus(self.var(h))
        return mean.reshape(*shape, -1), None if var is None else var.reshape(*shape, -1)


class AutoEncoder(nn.Module):
    """x → encoder MLP → linear latent → mirrored decoder MLP → mean (and variance)."""

    variational = False

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        latent: int,
        activation: str = "relu",
        output_activation: str = "linear",
        dropout: float = 0.0,
        batch_norm: bool = False,
        gaussian: bool = False,
        min_var: float = 1e-3,
    ) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            mlp([n_features, *hidden], activation, dropout, batch_norm),
            nn.Linear(hidden[-1] if hidden else n_features, latent),
        )
        self.decoder = Decoder(
            n_features, hidden, latent, activation, output_activation, dropout, batch_norm, gaussian, min_var
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor, samples: int = 1, eps: torch.Tensor | None = None) -> Reconstruction:
        z = self.encoder(x)
        mean, var = self.decoder(z)
        return Reconstruction(mean, var, z=z)


class VariationalAutoEncoder(nn.Module):
    """Gaussian latent with the reparameterisation trick; ``samples`` draws give (L, B, n) outputs."""

    variational = True

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        latent: int,
        activation: str = "relu",
        output_activation: str = "linear",
        dropout: float = 0.0,
        batch_norm: bool = False,
        gaussian: bool = False,
        min_var: float = 1e-3,
    ) -> None:
        super().__init__()
        self.body = mlp([n_features, *hidden], activation, dropout, batch_norm)
        width = hidden[-1] if hidden else n_features
        self.z_mean = nn.Linear(width, latent)
        self.z_logvar = nn.Linear(width, latent)
        self.decoder = Decoder(
            n_features, hidden, latent, activation, output_activation, dropout, batch_norm, gaussian, min_var
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean: the point to plot in latent space."""
        return self.z_mean(self.body(x))

    def forward(self, x: torch.Tensor, samples: int = 1, eps: torch.Tensor | None = None) -> Reconstruction:
        """``eps``: the standard-normal draws, (L, 1, latent) shared by every row (scoring), or
        None for fresh draws per row and sample (training)."""
        h = self.body(x)
        # capped above only: a row far outside the training data can push the log-variance past
        # float32's exp (seen under split=dagmm: logvar 1226 → z = inf → NaN scores). No floor: a
        # floor would bind during training (one changed the default model), and exp of a very
        # negative log-variance is just 0
        mu, logvar = self.z_mean(h), self.z_logvar(h).clamp(max=LOGVAR_MAX)
        if eps is None:
            eps = torch.randn((samples, *mu.shape), device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        mean, var = self.decoder(z)
        return Reconstruction(mean, var, mu, logvar, z)


def build_network(
    name: str,
    n_features: int,
    *,
    gaussian: bool,
    min_var: float,
    hidden: Sequence[int],
    latent: int,
    activation: str,
    output_activation: str,
    dropout: float,
    batch_norm: bool,
) -> nn.Module:
    cls = {"ae": AutoEncoder, "vae": VariationalAutoEncoder}[name]
    return cls(n_features, list(hidden), latent, activation, output_activation, dropout, batch_norm, gaussian, min_var)
