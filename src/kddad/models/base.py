"""The one interface every model kind implements, and how a model config finds its class.

A model turns encoded rows (float32 arrays) into outlier scores. :class:`~kddad.detector.Detector`
wraps it with what every kind shares: input checks, the encoder, thresholds, ``predict`` and the
saved description. Adding a model kind takes one module here (a subclass of :class:`Model`: of
:class:`~kddad.models.neural.NeuralModel` for a network trained by epochs, of
:class:`~kddad.models.estimator.Estimator` for a scikit-learn estimator), one config class in
:mod:`kddad.config.schema` (naming the subclass in ``implementation``) and one preset in
``conf/model/`` (see docs/library.md).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from kddad.config.schema import EarlyStoppingConfig, ScoreConfig, TrainerConfig
from kddad.errors import KddadError

History = list[dict[str, float]]


class Model(ABC):
    """A fitted (or fittable) scorer of encoded rows; higher scores are more anomalous.

    ``cfg`` is the kind's own config (``model.*``); ``trainer`` and ``early_stopping`` matter to
    the kinds that train by epochs and are ignored by the others.
    """

    #: per-feature scores (``score`` returns an (n, features) array; otherwise (n, 0))
    has_feature_scores: bool = True
    #: a latent space (``latent`` returns codes)
    has_latent: bool = True

    @classmethod
    def feature_scores_of(cls, cfg: Any) -> bool:
        """Whether a model of config ``cfg`` gives per-feature scores (a fusion: through a member)."""
        return cls.has_feature_scores

    @classmethod
    def latent_of(cls, cfg: Any) -> bool:
        """Whether a model of config ``cfg`` has a latent space."""
        return cls.has_latent

    def __init__(
        self, cfg: Any, score: ScoreConfig, trainer: TrainerConfig, early_stopping: EarlyStoppingConfig, seed: int = 0
    ) -> None:
        self.cfg, self.score_cfg, self.trainer, self.early_stopping, self.seed = (
            cfg,
            score,
            trainer,
            early_stopping,
            seed,
        )

    @abstractmethod
    def fit(self, X: np.ndarray, X_val: np.ndarray, *, logger: Any = False, callbacks: list | None = None) -> History:
        """Fit on normal rows; returns the per-epoch history (``epoch``, ``train_loss``, ``val_loss``).

        ``logger``: a Lightning logger (e.g. ``MLFlowLogger``) that receives the history.
        """

    @abstractmethod
    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(instance scores (n,), feature scores (n, features) or (n, 0)), with the settings of
        ``score_cfg`` (the detector changes its scoring-only part without refitting)."""

    def to(self, device: str) -> Model:
        """Score on ``device`` (``auto``, ``cpu``, ``cuda``); the scikit-learn kinds stay on the CPU."""
        return self

    def latent(self, X: np.ndarray) -> np.ndarray:
        """Latent codes, e.g. for a latent-space plot."""
        raise KddadError(f"model {self.cfg.name!r} has no latent space")

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write the fitted state into ``folder`` (no pickle)."""

    @abstractmethod
    def load(self, folder: Path, n_features: int) -> Model:
        """Read the fitted state written by :meth:`save`; refuse anything that does not fit."""


def log_history(logger: Any, history: History) -> None:
    """Send a history to a Lightning logger, as Lightning would during training."""
    if logger:
        for row in history:
            logger.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))


def model_class(cfg: Any) -> type[Model]:
    """The :class:`Model` subclass a model config names (``implementation = "module:Class"``)."""
    module, _, name = type(cfg).implementation.partition(":")
    return getattr(importlib.import_module(module), name)
