"""``pca``: principal component analysis, the linear autoencoder, a baseline.

Reconstruction = projection on the first principal axes; the ``mse`` and ``likelihood`` scores
are the networks' (:mod:`kddad.models.scores`), the likelihood with a per-feature residual variance
measured on the training rows (the counterpart of a learned decoder variance).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kddad.errors import KddadError
from kddad.models.base import History
from kddad.models.estimator import Estimator
from kddad.models.scores import likelihood_scores, mse_scores

log = logging.getLogger(__name__)


class PCA(Estimator):
    expected = "PCA"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.residual_var: np.ndarray | None = None  # per-feature variance of the training residuals

    def new(self) -> Any:
        from sklearn.decomposition import PCA as SkPCA

        return SkPCA(n_components=self.cfg.n_components, whiten=self.cfg.whiten, random_state=self.seed)

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.inverse_transform(self.estimator.transform(X)).astype(np.float32)

    def fit_history(self, X: np.ndarray, X_val: np.ndarray) -> History:
        """One row: the mean squared reconstruction error of train and val."""
        self.estimator.fit(X)
        residual = X - self._reconstruct(X)
        self.residual_var = np.maximum(residual.var(0), self.score_cfg.min_var).astype(np.float32)
        val_residual = X_val - self._reconstruct(X_val)
        log.info(
            "pca: %d components keep %.4f of the variance",
            self.estimator.n_components_,
            float(self.estimator.explained_variance_ratio_.sum()),
        )
        return [{"epoch": 0, "train_loss": float(np.mean(residual**2)), "val_loss": float(np.mean(val_residual**2))}]

    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, mean = torch.from_numpy(X), torch.from_numpy(self._reconstruct(X))
        if self.score_cfg.name == "likelihood":
            # a tensor of its own: without autograd the scores are computed in the variance's memory
            var = torch.from_numpy(self.residual_var).expand_as(x).contiguous()
            inst, feat = likelihood_scores(x, mean, var)
        else:
            inst, feat = mse_scores(x, mean, self.score_cfg.outlier_perc)
        return inst.numpy(), feat.numpy()

    def latent(self, X: np.ndarray) -> np.ndarray:
        """The principal components."""
        return self.estimator.transform(X).astype(np.float32)

    def state(self) -> dict[str, Any]:
        return {"residual_var": self.residual_var}

    def set_state(self, state: dict[str, Any], file: Path, n_features: int) -> None:
        var = state.get("residual_var")
        if not (
            isinstance(var, np.ndarray) and var.shape == (n_features,) and np.isfinite(var).all() and (var > 0).all()
        ):
            raise KddadError(f"{file}: residual_var must be {n_features} positive finite variances")
        self.residual_var = var
