"""``neutral``: NeuTraL AD (Qiu et al., ICML 2021), neural transformation learning.

K small bias-free networks ``T_k`` turn a row ``x`` into K views (``x · sigmoid(T_k(x))``, a
learned soft mask, or ``x + T_k(x)``), and a bias-free encoder maps the row and its views onto the
unit sphere. The deterministic contrastive loss (DCL) asks each view to stay closer to the row's
own embedding than to the other views:

    L(x) = Σ_k −log( h(z_k, z) / (h(z_k, z) + Σ_{l≠k} h(z_k, z_l)) ),   h(a, b) = exp(cos(a, b) / τ)

scaled by 1 / log K, so that views the encoder cannot tell apart score 1 each. The transformations
and the encoder are trained together on normal rows; a row's anomaly score is its own L(x): the
views of a row unlike the training rows are harder to tell apart and to tie to the row. No bias
terms (as in the paper's tabular networks): a constant output would satisfy the loss on any input.
The K transformations are held as stacked weight tensors, so all K views are one batched product.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from kddad.config.schema import NeuTraLConfig
from kddad.models.networks import ACTIVATIONS, mlp
from kddad.models.neural import NeuralModel


class Transformations(nn.Module):
    """K bias-free MLPs ``n → hidden… → n`` applied to the same rows: (B, n) → (K, B, n)."""

    def __init__(self, n_features: int, cfg: NeuTraLConfig) -> None:
        super().__init__()
        sizes = [n_features, *cfg.transform_hidden, n_features]
        self.weights = nn.ParameterList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(cfg.transforms, n_in, n_out)
            for k in range(cfg.transforms):  # nn.Linear's default initialisation, per transformation
                nn.init.kaiming_uniform_(w[k].T, a=math.sqrt(5))
            self.weights.append(nn.Parameter(w))
        self.activation = ACTIVATIONS[cfg.activation]()
        self.mul = cfg.transform_type == "mul"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0)
        for i, w in enumerate(self.weights):
            h = torch.matmul(h, w)  # (1 or K, B, n_in) @ (K, n_in, n_out) → (K, B, n_out)
            if i < len(self.weights) - 1:
                h = self.activation(h)
        return torch.sigmoid(h) * x if self.mul else h + x


class NeuTraLNetwork(nn.Module):
    """The transformations and the encoder; ``forward`` gives each row's DCL, (B,)."""

    def __init__(self, n_features: int, cfg: NeuTraLConfig) -> None:
        super().__init__()
        self.transformations = Transformations(n_features, cfg)
        sizes = [n_features, *cfg.hidden]
        self.encoder = nn.Sequential(
            mlp(sizes, cfg.activation, bias=False), nn.Linear(sizes[-1], cfg.rep_dim, bias=False)
        )
        self.temperature = cfg.temperature
        self.scale = 1 / math.log(cfg.transforms)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The row's embedding (before normalising to the sphere)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = torch.cat([x.unsqueeze(0), self.transformations(x)])  # (K + 1, B, n)
        k1, batch, n = views.shape
        z = F.normalize(self.encoder(views.reshape(-1, n)).reshape(k1, batch, -1), dim=-1).transpose(0, 1)
        sim = torch.bmm(z, z.transpose(1, 2)) / self.temperature  # (B, K + 1, K + 1) cosine / τ
        own = torch.eye(k1, dtype=torch.bool, device=x.device)
        others = sim[:, 1:].masked_fill(own[1:], float("-inf"))  # each view against all but itself
        positive = sim[:, 1:, 0]  # each view against the row
        return ((torch.logsumexp(others, dim=-1) - positive) * self.scale).sum(-1)


class NeuTraL(NeuralModel):
    """NeuTraL AD; ``network`` is a :class:`NeuTraLNetwork`."""

    has_feature_scores = False
    network: NeuTraLNetwork | None = None

    def build(self, n_features: int) -> NeuTraLNetwork:
        return NeuTraLNetwork(n_features, self.cfg)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).mean()

    def score_batch(self, x: torch.Tensor, state: None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(x), x.new_empty((len(x), 0))
