"""scikit-learn baselines, fitted, scored and saved behind the same interface as the networks.

``pca``: the linear autoencoder. Reconstruction = projection on the first principal axes; the
``mse`` and ``likelihood`` scores are the networks' (:mod:`kddad.scores`), the likelihood with a
per-feature residual variance measured on the training rows (the counterpart of a learned
decoder variance).

``iforest``: IsolationForest's anomaly score (the opposite of ``score_samples``, so that higher
means more anomalous, as for every other score). It has no per-feature scores and no latent
space; the ``score`` settings do not apply to it.

Saved with skops (no pickle). Trees hold raw node indices that scikit-learn follows without
bounds checks, so :func:`load` checks them before the forest is used.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from kddad.config import IForestConfig, PCAConfig, ScoreConfig
from kddad.errors import KddadError
from kddad.scores import likelihood_scores, mse_scores

log = logging.getLogger(__name__)

FILE = "baseline.skops"
_TREE = "sklearn.tree._tree.Tree"


class Baseline:
    """A fitted scikit-learn baseline: ``fit``, ``score``, ``latent``, ``save``/``load``."""

    def __init__(self, cfg: IForestConfig | PCAConfig, seed: int = 0) -> None:
        self.cfg, self.seed = cfg, seed
        self.estimator = None
        self.residual_var: np.ndarray | None = None  # pca: per-feature variance of the training residuals

    @property
    def has_latent(self) -> bool:
        return self.cfg.name == "pca"

    def _new(self):
        c = self.cfg
        if c.name == "iforest":
            from sklearn.ensemble import IsolationForest

            return IsolationForest(n_estimators=c.n_estimators, max_samples=c.max_samples,
                                   max_features=c.max_features, n_jobs=c.n_jobs, random_state=self.seed)
        from sklearn.decomposition import PCA

        return PCA(n_components=c.n_components, whiten=c.whiten, random_state=self.seed)

    def fit(self, X: np.ndarray, X_val: np.ndarray, score: ScoreConfig) -> list[dict[str, float]]:
        """Fit on normal rows; returns a one-row history (PCA: mean squared reconstruction error)."""
        self.estimator = self._new().fit(X)
        if self.cfg.name == "iforest":
            return []
        residual = X - self._reconstruct(X)
        self.residual_var = np.maximum(residual.var(0), score.min_var).astype(np.float32)
        val_residual = X_val - self._reconstruct(X_val)
        log.info("pca: %d components keep %.4f of the variance", self.estimator.n_components_,
                 float(self.estimator.explained_variance_ratio_.sum()))
        return [{"epoch": 0, "train_loss": float(np.mean(residual ** 2)), "val_loss": float(np.mean(val_residual ** 2))}]

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.inverse_transform(self.estimator.transform(X)).astype(np.float32)

    def score(self, X: np.ndarray, score: ScoreConfig) -> tuple[np.ndarray, np.ndarray]:
        """(instance scores (n,), feature scores (n, features); (n, 0) for iforest)."""
        if self.cfg.name == "iforest":
            return -self.estimator.score_samples(X).astype(np.float32), np.zeros((len(X), 0), np.float32)
        x, mean = torch.from_numpy(X), torch.from_numpy(self._reconstruct(X))
        if score.name == "likelihood":
            inst, feat = likelihood_scores(x, mean, torch.from_numpy(self.residual_var).expand_as(x))
        else:
            inst, feat = mse_scores(x, mean, score.outlier_perc)
        return inst.numpy(), feat.numpy()

    def latent(self, X: np.ndarray) -> np.ndarray:
        if not self.has_latent:
            raise KddadError(f"model {self.cfg.name!r} has no latent space")
        return self.estimator.transform(X).astype(np.float32)

    def save(self, folder: Path) -> None:
        import skops.io as sio

        sio.dump({"estimator": self.estimator, "residual_var": self.residual_var}, folder / FILE)

    def load(self, folder: Path, n_features: int) -> "Baseline":
        """Load a saved baseline; refuses files holding other types or out-of-range tree nodes."""
        import skops.io as sio

        file = folder / FILE
        try:
            state = sio.load(file, trusted=[_TREE] if self.cfg.name == "iforest" else [])
            self.estimator, self.residual_var = state["estimator"], state["residual_var"]
        except Exception as err:
            raise KddadError(f"{file}: not a valid {self.cfg.name} baseline ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None
        expected = "IsolationForest" if self.cfg.name == "iforest" else "PCA"
        if type(self.estimator).__name__ != expected:
            raise KddadError(f"{file}: holds a {type(self.estimator).__name__}, expected {expected}")
        if getattr(self.estimator, "n_features_in_", None) != n_features:
            raise KddadError(f"{file}: fitted on {getattr(self.estimator, 'n_features_in_', '?')} features, "
                             f"the detector description says {n_features}")
        if self.cfg.name == "iforest":
            _check_trees(self.estimator, file)
        elif not (isinstance(self.residual_var, np.ndarray) and self.residual_var.shape == (n_features,)
                  and np.isfinite(self.residual_var).all() and (self.residual_var > 0).all()):
            raise KddadError(f"{file}: residual_var must be {n_features} positive finite variances")
        return self


def _check_trees(forest, file: Path) -> None:
    """Every split node's two children inside its tree and after it (scikit-learn builds trees depth
    first, so a child never precedes its parent: no wild read, no cycle), leaves childless, every
    split feature inside the data."""
    for i, (tree, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        t = tree.tree_
        node = np.arange(t.node_count)
        left, right = np.asarray(t.children_left), np.asarray(t.children_right)
        leaf = left == -1
        split_nodes = ~leaf
        bad = (right[leaf] != -1).any() \
            or any(((c[split_nodes] <= node[split_nodes]) | (c[split_nodes] >= t.node_count)).any()
                   for c in (left, right)) \
            or ((t.feature[split_nodes] < 0) | (t.feature[split_nodes] >= len(features))).any() \
            or ((features < 0) | (features >= forest.n_features_in_)).any()
        if bad:
            raise KddadError(f"{file}: tree {i} has node or feature indices out of range; refusing to use it")
