"""``deep_svdd``: Deep Support Vector Data Description (Ruff et al., ICML 2018), one-class.

A network without bias terms maps rows to an embedding; training pulls the normal rows towards a
fixed centre ``c``, the mean embedding of the training rows under the initial weights. The loss is
the batch mean of ``‖φ(x) − c‖²`` and a row's anomaly score is its own ``‖φ(x) − c‖²``. Bias terms
(and a trainable centre) would let the network map every row onto ``c``, a constant function with
zero loss; a centre coordinate near zero is moved out to ``±eps`` as in the paper's code, for the
same reason. The centre is a buffer of the network, so it is saved and loaded with the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from kddad.config.schema import DeepSVDDConfig
from kddad.models.batches import TensorBatches
from kddad.models.networks import mlp
from kddad.models.neural import NeuralModel

#: the least magnitude of a centre coordinate (the paper's code)
CENTER_EPS = 0.1
#: rows per pass when the centre is computed
CENTER_BATCH = 1 << 16


class SVDDNetwork(nn.Module):
    """x → bias-free MLP → bias-free linear embedding; ``forward`` gives the squared distance to ``center``."""

    def __init__(self, n_features: int, cfg: DeepSVDDConfig) -> None:
        super().__init__()
        sizes = [n_features, *cfg.hidden]
        self.body = mlp(sizes, cfg.activation, bias=False)
        self.embed = nn.Linear(sizes[-1], cfg.rep_dim, bias=False)
        self.register_buffer("center", torch.zeros(cfg.rep_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding φ(x)."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) squared distances ‖φ(x) − c‖²."""
        return (self.encode(x) - self.center).square().sum(-1)


class DeepSVDD(NeuralModel):
    """One-class Deep SVDD; ``network`` is an :class:`SVDDNetwork`."""

    has_feature_scores = False
    network: SVDDNetwork | None = None

    def build(self, n_features: int) -> SVDDNetwork:
        return SVDDNetwork(n_features, self.cfg)

    @torch.no_grad()
    def prepare(self, X: torch.Tensor) -> None:
        """The centre: the mean initial embedding of the training rows, each coordinate at least ``CENTER_EPS``
        away from 0."""
        net = self.network.eval()
        total = torch.zeros_like(net.center)
        for xb in TensorBatches(X, CENTER_BATCH):
            total += net.encode(xb.to(net.center.device)).sum(0)
        c = total / max(len(X), 1)
        net.center.copy_(torch.where(c.abs() < CENTER_EPS, torch.where(c < 0, -CENTER_EPS, CENTER_EPS), c))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).mean()

    def score_batch(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(x), x.new_empty((len(x), 0))

    @property
    def weight_decay(self) -> float:
        return self.cfg.weight_decay
