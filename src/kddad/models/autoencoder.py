"""The reconstruction networks, ``ae`` and ``vae``, as a :class:`~kddad.models.neural.NeuralModel`.

Trained on :func:`reconstruction_loss`; scored with :mod:`kddad.models.scores` (a VAE's L latent
samples decoded in one batched pass, with draws shared by every row).
"""

from __future__ import annotations

import torch

from kddad.models.networks import DecoderHead, ReconstructionNetwork, build_network
from kddad.models.neural import NeuralModel
from kddad.models.scores import gaussian_log_prob, likelihood_scores, mse_scores


def reconstruction_loss(
    network: ReconstructionNetwork, x: torch.Tensor, *, likelihood: bool, beta: float, recon_std: float
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


class Autoencoder(NeuralModel):
    """An autoencoder (``ae``) or variational autoencoder (``vae``); ``network`` is the torch module."""

    network: ReconstructionNetwork | None = None

    @property
    def likelihood(self) -> bool:
        return self.score_cfg.name == "likelihood"

    def build(self, n_features: int) -> ReconstructionNetwork:
        return build_network(n_features, self.cfg, DecoderHead.for_score(self.score_cfg))

    def prepare(self, X: torch.Tensor) -> None:
        self.network.decoder.set_floor(X)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        m = self.cfg
        return reconstruction_loss(self.network, x, likelihood=self.likelihood, beta=m.beta, recon_std=m.recon_std)

    def score_state(self) -> torch.Tensor | None:
        return self.latent_draws(self.score_cfg.samples) if self.network.variational else None

    def latent_draws(self, samples: int) -> torch.Tensor:
        """The L standard-normal draws every row's score uses, (L, 1, latent), from the seed; with
        ``samples`` 0 one draw of zeros: the posterior mean is decoded, once.

        Shared by all rows (common random numbers): a row's score is a function of the row alone,
        the same whether it is scored alone, in a file of millions, or on another device.
        """
        latent = self.network.z_mean.out_features
        if samples == 0:
            return torch.zeros((1, 1, latent), device=self.device)
        gen = torch.Generator().manual_seed(self.seed)
        return torch.randn((samples, 1, latent), generator=gen).to(self.device)

    def score_batch(self, x: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        net, score = self.network, self.score_cfg
        out = net(x, samples=len(state), eps=state) if net.variational else net(x)
        if self.likelihood:
            return likelihood_scores(x, out.mean, out.var)
        return mse_scores(x, out.mean, score.outlier_perc)
