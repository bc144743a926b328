"""Plain torch networks of the ``ae`` and ``vae`` kinds, built from one :class:`NetworkConfig`.

The decoder outputs a mean per feature and, for the likelihood score, a variance bounded below
by ``min_var`` (so the likelihood cannot run away by shrinking the variance to zero), or by a
floor per feature in proportion to its variance in the training rows. Both kinds
share the encoder body and the decoder; only the step from the body to the latent code differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from kddad.config.schema import NetworkConfig, ScoreConfig

LOGVAR_MAX = 20.0  # latent log-variance ceiling (std e^10); trained VAEs stay below 3 on KDD rows
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU, "tanh": nn.Tanh}


def mlp(
    sizes: Sequence[int], activation: str, dropout: float = 0.0, batch_norm: bool = False, bias: bool = True
) -> nn.Sequential:
    """Dense layers ``sizes[0] → … → sizes[-1]``, each followed by [batch norm], activation, [dropout]."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(n_in, n_out, bias=bias))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class DecoderHead(NamedTuple):
    """What the decoder outputs besides the mean: a variance (``gaussian``) above a floor, ``min_var``
    or, with ``min_var_share``, a floor per feature set from the training rows (:meth:`Decoder.set_floor`)."""

    gaussian: bool = False
    min_var: float = 1e-3
    min_var_share: float = 0.0

    @classmethod
    def for_score(cls, score: ScoreConfig) -> DecoderHead:
        """The likelihood score needs a learned variance; the mse score a mean only."""
        return cls(gaussian=score.name == "likelihood", min_var=score.min_var, min_var_share=score.min_var_share)


class Reconstruction(NamedTuple):
    """Decoder output; with latent samples the tensors carry a leading sample axis (L, B, n)."""

    mean: torch.Tensor
    var: torch.Tensor | None
    z_mean: torch.Tensor | None = None
    z_logvar: torch.Tensor | None = None
    z: torch.Tensor | None = None


class Decoder(nn.Module):
    """latent → the encoder's widths mirrored → mean (and variance)."""

    def __init__(self, n_features: int, cfg: NetworkConfig, head: DecoderHead) -> None:
        super().__init__()
        widths = [cfg.latent, *reversed(cfg.hidden)]
        self.body = mlp(widths, cfg.activation, cfg.dropout, cfg.batch_norm)
        self.mean = nn.Linear(widths[-1], n_features)
        self.var = nn.Linear(widths[-1], n_features) if head.gaussian else None
        self.sigmoid = cfg.output_activation == "sigmoid"
        self.min_var, self.min_var_share = head.min_var, head.min_var_share
        if head.gaussian and head.min_var_share:  # saved with the weights
            self.register_buffer("floor", torch.full((n_features,), head.min_var))

    @torch.no_grad()
    def set_floor(self, X: torch.Tensor) -> None:
        """The per-feature floor: ``min_var_share`` × each feature's variance in ``X``, at least ``min_var``."""
        if hasattr(self, "floor"):
            self.floor.copy_((X.var(0, correction=0) * self.min_var_share).clamp(min=self.min_var))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = z.shape[:-1]
        h = self.body(z.reshape(-1, z.shape[-1]))
        mean = self.mean(h)
        if self.sigmoid:
            mean = torch.sigmoid(mean)
        var = None if self.var is None else getattr(self, "floor", self.min_var) + F.softplus(self.var(h))
        return mean.reshape(*shape, -1), None if var is None else var.reshape(*shape, -1)


class ReconstructionNetwork(nn.Module):
    """x → encoder MLP → latent code (:meth:`_latent_layers`, the kind's own) → mirrored decoder.

    The layers are created in this order (encoder body, latent layers, decoder), so a seeded
    network starts from the same weights whatever code builds it.
    """

    variational: ClassVar[bool] = False

    def __init__(self, n_features: int, cfg: NetworkConfig, head: DecoderHead) -> None:
        super().__init__()
        sizes = [n_features, *cfg.hidden]
        self._latent_layers(mlp(sizes, cfg.activation, cfg.dropout, cfg.batch_norm), sizes[-1], cfg.latent)
        self.decoder = Decoder(n_features, cfg, head)

    def _latent_layers(self, body: nn.Sequential, width: int, latent: int) -> None:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The point to plot in latent space."""
        raise NotImplementedError


class AENetwork(ReconstructionNetwork):
    """An autoencoder: a linear latent code after the encoder body."""

    def _latent_layers(self, body: nn.Sequential, width: int, latent: int) -> None:
        self.encoder = nn.Sequential(body, nn.Linear(width, latent))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor, samples: int = 1, eps: torch.Tensor | None = None) -> Reconstruction:
        z = self.encoder(x)
        mean, var = self.decoder(z)
        return Reconstruction(mean, var, z=z)


class VAENetwork(ReconstructionNetwork):
    """Gaussian latent with the reparameterisation trick; ``samples`` draws give (L, B, n) outputs."""

    variational = True

    def _latent_layers(self, body: nn.Sequential, width: int, latent: int) -> None:
        self.body = body
        self.z_mean = nn.Linear(width, latent)
        self.z_logvar = nn.Linear(width, latent)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean."""
        return self.z_mean(self.body(x))

    def forward(self, x: torch.Tensor, samples: int = 1, eps: torch.Tensor | None = None) -> Reconstruction:
        """``eps``: the standard-normal draws, (L, 1, latent) shared by every row (scoring), or
        None for fresh draws per row and sample (training)."""
        h = self.body(x)
        # capped above only: a row far outside the training data can push the log-variance past
        # float32's exp (logvar in the thousands → z = inf → NaN scores). No floor: a floor would
        # bind during training, and exp of a very negative log-variance is just 0
        mu, logvar = self.z_mean(h), self.z_logvar(h).clamp(max=LOGVAR_MAX)
        if eps is None:
            eps = torch.randn((samples, *mu.shape), device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        mean, var = self.decoder(z)
        return Reconstruction(mean, var, mu, logvar, z)


NETWORKS: dict[str, type[ReconstructionNetwork]] = {"ae": AENetwork, "vae": VAENetwork}


def build_network(n_features: int, cfg: NetworkConfig, head: DecoderHead) -> ReconstructionNetwork:
    """The network ``cfg.name`` names (``ae``, ``vae``) for ``n_features`` inputs."""
    return NETWORKS[cfg.name](n_features, cfg, head)
