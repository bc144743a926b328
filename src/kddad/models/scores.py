"""Outlier scores from a reconstruction, at feature and instance level.

``mse``: squared error per feature (averaged over latent samples for a VAE); instance score =
mean of the top ``outlier_perc`` % of feature scores (alibi-detect's definition).

``likelihood``: Gaussian negative log-likelihood with the decoder's learned variance. For a VAE,
An & Cho's reconstruction probability: −log of the mean over L posterior samples of p(x | z_l),
by logsumexp, per feature and for the whole instance (the joint p(x | z_l) = ∏_j p(x_j | z_l)).
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, var)."""
    return -0.5 * (LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)


def top_mean(feature_scores: torch.Tensor, outlier_perc: float) -> torch.Tensor:
    """Mean of the largest ``outlier_perc`` % of each row's feature scores (at least one)."""
    if outlier_perc >= 100:
        return feature_scores.mean(-1)
    k = max(1, math.ceil(feature_scores.shape[-1] * outlier_perc / 100))
    return feature_scores.topk(k, dim=-1).values.mean(-1)


def mse_scores(x: torch.Tensor, mean: torch.Tensor, outlier_perc: float = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """(instance, feature) scores; ``mean`` is (B, n) or (L, B, n) with latent samples first."""
    fscore = (x - mean) ** 2
    if fscore.dim() == 3:
        fscore = fscore.mean(0)
    return top_mean(fscore, outlier_perc), fscore


def likelihood_scores(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(instance, feature) negative log-likelihoods; (L, B, n) inputs average p over the L samples.

    Without autograd (scoring) ``mean`` and ``var`` are overwritten: the log-density is computed in
    their memory, a third of the passes over the (L, B, n) arrays.
    """
    if torch.is_grad_enabled():
        logp = gaussian_log_prob(x, mean, var)
    else:
        logp = mean.sub_(x).square_().div_(var).add_(var.log_()).add_(LOG_2PI).mul_(-0.5)
    if logp.dim() == 3 and logp.shape[0] == 1:  # one sample (or the posterior mean): no average to take
        logp = logp[0]
    if logp.dim() == 2:
        return -logp.sum(-1), -logp
    log_l = math.log(logp.shape[0])
    instance = -(torch.logsumexp(logp.sum(-1), dim=0) - log_l)
    feature = -(torch.logsumexp(logp, dim=0) - log_l)
    return instance, feature
