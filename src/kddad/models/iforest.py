"""``iforest``: scikit-learn's IsolationForest, a baseline.

Its own anomaly score (the opposite of ``score_samples``, so that higher means more anomalous, as
for every other score); no per-feature scores and no latent space; the ``score`` settings do not
apply to it. Trees hold raw node indices that scikit-learn follows without bounds checks, so
they are checked on load before the forest is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kddad.errors import KddadError
from kddad.models.estimator import Estimator


class IForest(Estimator):
    has_feature_scores = False
    has_latent = False
    expected = "IsolationForest"
    trusted = ("sklearn.tree._tree.Tree",)

    def new(self) -> Any:
        from sklearn.ensemble import IsolationForest

        c = self.cfg
        return IsolationForest(
            n_estimators=c.n_estimators,
            max_samples=c.max_samples,
            max_features=c.max_features,
            n_jobs=c.n_jobs,
            random_state=self.seed,
        )

    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return -self.estimator.score_samples(X).astype(np.float32), np.zeros((len(X), 0), np.float32)

    def check(self, file: Path) -> None:
        """Every split node's two children inside its tree and after it (scikit-learn builds trees depth
        first, so a child never precedes its parent: no wild read, no cycle), leaves childless, every
        split feature inside the data."""
        forest = self.estimator
        for i, (tree, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
            t = tree.tree_
            node = np.arange(t.node_count)
            left, right = np.asarray(t.children_left), np.asarray(t.children_right)
            leaf = left == -1
            split_nodes = ~leaf
            bad = (
                (right[leaf] != -1).any()
                or any(
                    ((c[split_nodes] <= node[split_nodes]) | (c[split_nodes] >= t.node_count)).any()
                    for c in (left, right)
                )
                or ((t.feature[split_nodes] < 0) | (t.feature[split_nodes] >= len(features))).any()
                or ((features < 0) | (features >= forest.n_features_in_)).any()
            )
            if bad:
                raise KddadError(f"{file}: tree {i} has node or feature indices out of range; refusing to use it")
