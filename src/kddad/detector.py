"""The outlier detector: fit on normal data, score, infer a threshold, predict, save, load.

In the spirit of alibi-detect and PyOD, usable without DVC or Hydra::

    det = Detector(model={"name": "vae", "hidden": [20, 15, 7], "latent": 2}, score={"name": "mse"})
    # or a scikit-learn baseline: model={"name": "pca", "n_components": 8} / {"name": "iforest"}
    det.fit(X_normal)                       # arrays, or DataFrames if an encoder is given
    det.infer_threshold(X_batch, perc_outlier=5)
    pred = det.predict(X_new)               # instance_score, feature_score, is_outlier
    det.explain(df_new, k=3, prediction=pred)  # the raw features behind each score, with shares
    det.save("models/detector"); det = Detector.load("models/detector", device="auto")

The model itself (:class:`kddad.models.base.Model`: the networks, PCA, IsolationForest) fits,
scores and saves its own state; the detector adds what every kind shares: input checks, the
encoder, thresholds and ``predict``. The saved folder, validated whole on load, is
:mod:`kddad.detector_file`'s; explanations are :mod:`kddad.explain`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kddad import __version__, detector_file
from kddad.config import MODEL_ADAPTER, EarlyStoppingConfig, ModelConfig, ScoreConfig, TrainerConfig
from kddad.detector_file import finite_threshold, read_threshold
from kddad.errors import DetectorError, KddadError
from kddad.explain import top_features
from kddad.features.encoder import ColumnGroup, FeatureEncoder
from kddad.models.base import Model, model_class
from kddad.thresholds import best_f1_cut

__all__ = ["Detector", "DetectorError", "Prediction", "finite_threshold", "read_threshold"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Detector.predict` returns."""

    instance_score: np.ndarray  # (n,)
    feature_score: np.ndarray  # (n, features)
    is_outlier: np.ndarray  # (n,) 0/1
    threshold: float


def _finite(inst: np.ndarray, feat: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refuse NaN or infinite instance scores: they would silently poison thresholds and metrics."""
    bad = np.flatnonzero(~np.isfinite(inst))
    if bad.size:
        raise DetectorError(
            f"{bad.size} of {len(inst)} scores are not finite (first: row {bad[0]}, "
            f"max |x| {float(np.abs(X[bad[0]]).max()):.3g}); the model overflowed"
        )
    return inst, feat


def _cfg(cls, value):
    """A config from a mapping or as it is; unset keys take the schema's defaults (those of conf/)."""
    if cls is ModelConfig:
        return value if hasattr(value, "model_dump") else MODEL_ADAPTER.validate_python(dict(value))
    if isinstance(value, cls):
        return value
    return cls.model_validate(dict(value or {}))


@contextmanager
def _as_detector_error() -> Iterator[None]:
    """A model's refusal (a device it cannot use, files it cannot read) as the detector's."""
    try:
        yield
    except DetectorError:
        raise
    except KddadError as err:
        raise DetectorError(str(err)) from None


class Detector:
    """An outlier detector around any model kind: autoencoder (``ae``), variational autoencoder
    (``vae``), or a scikit-learn baseline (``pca``, ``iforest``), all behind the same calls."""

    def __init__(
        self,
        model: ModelConfig | Mapping[str, Any],
        score: ScoreConfig | Mapping[str, Any] | None = None,
        trainer: TrainerConfig | Mapping[str, Any] | None = None,
        early_stopping: EarlyStoppingConfig | Mapping[str, Any] | None = None,
        encoder: FeatureEncoder | None = None,
        seed: int = 0,
    ) -> None:
        self.model = _cfg(ModelConfig, model)
        self._score_cfg = _cfg(ScoreConfig, score)
        self.trainer = _cfg(TrainerConfig, trainer)
        self.early_stopping = _cfg(EarlyStoppingConfig, early_stopping)
        self.encoder, self.seed = encoder, seed
        self.model_: Model | None = None  # the fitted model (scikit-learn's trailing underscore)
        self.n_features: int | None = None
        self.threshold: float | None = None
        self.threshold_info: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        #: where the training rows came from (file, sha256, split), recorded by the pipeline
        self.data: dict[str, Any] = {}
        #: per-feature median score of held-out normal rows: what explanations count as excess
        self.feature_reference: np.ndarray | None = None
        #: the kddad release that saved a loaded detector (None: not loaded)
        self.kddad_version: str | None = None

    @property
    def score_cfg(self) -> ScoreConfig:
        """The score settings; the fitted model scores with these (:meth:`set_score` changes both)."""
        return self._score_cfg

    def _new_model(self) -> Model:
        return model_class(self.model)(self.model, self.score_cfg, self.trainer, self.early_stopping, self.seed)

    @property
    def has_feature_scores(self) -> bool:
        return model_class(self.model).feature_scores_of(self.model)

    @property
    def has_latent(self) -> bool:
        return model_class(self.model).latent_of(self.model)

    # -- data -------------------------------------------------------------------------------
    def _array(self, X: np.ndarray | pd.DataFrame, what: str = "X") -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            if self.encoder is None:
                raise DetectorError(f"{what}: a DataFrame needs a detector built with an encoder; pass an array")
            X = self.encoder.transform(X, what=what)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise DetectorError(f"{what}: expected a 2-D array (rows × features), got shape {X.shape}")
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise DetectorError(f"{what}: expected {self.n_features} features, got {X.shape[1]}")
        if not np.isfinite(X).all():
            r, c = map(int, np.argwhere(~np.isfinite(X))[0])
            raise DetectorError(f"{what}: row {r}, feature {c} is {X[r, c]}; expected finite values")
        return X

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray | pd.DataFrame,
        X_val: np.ndarray | pd.DataFrame | None = None,
        *,
        logger: Any = False,
        callbacks: list | None = None,
        val_frac: float = 0.1,
    ) -> Detector:
        """Train on normal rows; early stopping watches ``X_val`` (else a ``val_frac`` hold-out of X).

        ``logger``: a Lightning logger (e.g. ``MLFlowLogger``) that receives the training history.
        """
        if self.encoder is not None and isinstance(X, pd.DataFrame) and not self.encoder.fitted:
            self.encoder.fit(X)
        X = self._array(X, "X")
        self.n_features = X.shape[1]
        if X_val is None:
            perm = np.random.default_rng(self.seed).permutation(len(X))
            n_val = max(1, int(len(X) * val_frac))
            X, X_val = X[perm[n_val:]], X[perm[:n_val]]
        X_val = self._array(X_val, "X_val")
        self.threshold, self.threshold_info = None, {}  # a refit invalidates any threshold
        model = self._new_model()
        if not self.has_feature_scores:
            log.info(
                "%s scores with its own anomaly score: the score settings (%s) do not apply",
                self.model.name,
                self.score_cfg.name,
            )
        self.history = model.fit(X, X_val, logger=logger, callbacks=callbacks)
        self.model_ = model
        if self.has_feature_scores:
            self.feature_reference = np.median(self.score(X_val)[1], axis=0).astype(np.float32)
        return self

    def to(self, device: str = "auto") -> Detector:
        """Score on ``device``: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:1``…

        The scores are the same on every device to float tolerance (latent draws come from the
        seed on the CPU). The scikit-learn baselines score on the CPU whatever is asked.
        """
        with _as_detector_error():
            self._fitted().to(device)
        return self

    # -- score ------------------------------------------------------------------------------
    def _fitted(self) -> Model:
        """The fitted model; refuses an unfitted detector."""
        if self.model_ is None:
            raise DetectorError("the detector is not fitted: call fit() or Detector.load() first")
        return self.model_

    def set_score(self, **settings: Any) -> Detector:
        """Change scoring-only settings (``ScoreConfig.scoring_only()``: ``samples``, ``outlier_perc``)."""
        bad = set(settings) - set(ScoreConfig.scoring_only())
        if bad:
            raise DetectorError(f"set_score: {sorted(bad)} change training, not only scoring; refit instead")
        self._score_cfg = ScoreConfig.model_validate({**self.score_cfg.model_dump(), **settings})
        if self.model_ is not None:
            self.model_.score_cfg = self._score_cfg
        return self

    def score(self, X: np.ndarray | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(instance scores (n,), feature scores (n, features)); reproducible for a given seed."""
        model = self._fitted()
        X = self._array(X)
        return _finite(*model.score(X), X)

    def latent(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Latent codes (the posterior mean for a VAE; PCA's components), e.g. for a latent-space plot."""
        return self._fitted().latent(self._array(X))

    # -- threshold & predict ----------------------------------------------------------------
    def infer_threshold(
        self, X: np.ndarray | pd.DataFrame, perc_outlier: float, *, scores: np.ndarray | None = None
    ) -> float:
        """Threshold = percentile ``100 - perc_outlier`` of the scores of a batch (alibi-detect).

        ``scores``: the batch's instance scores, when the caller has them already.
        """
        if not 0 <= perc_outlier < 100:
            raise DetectorError(f"perc_outlier: expected a value in [0, 100), got {perc_outlier}")
        scores = self.score(X)[0] if scores is None else scores
        self.threshold = float(np.percentile(scores, 100 - perc_outlier))
        self.threshold_info = {"method": "percentile", "perc_outlier": perc_outlier, "rows": len(scores)}
        return self.threshold

    def infer_threshold_fpr(
        self, X_normal: np.ndarray | pd.DataFrame, fpr: float, *, scores: np.ndarray | None = None
    ) -> float:
        """Threshold from normal rows only, flagging a fraction ``fpr`` of them."""
        if not 0 < fpr < 1:
            raise DetectorError(f"fpr: expected a value in (0, 1), got {fpr}")
        scores = self.score(X_normal)[0] if scores is None else scores
        self.threshold = float(np.quantile(scores, 1 - fpr))
        self.threshold_info = {"method": "fpr", "fpr": fpr, "rows": len(scores)}
        return self.threshold

    def infer_threshold_f1(
        self, X: np.ndarray | pd.DataFrame, is_outlier: np.ndarray, *, scores: np.ndarray | None = None
    ) -> float:
        """Threshold with the best F1 on a labelled batch: the cut the batch's own labels favour,
        where a fixed percentile flags the batch's outlier share whatever the scores' overlap.

        The cut lies halfway between the lowest flagged score and the highest one below it, so a
        row scored as the batch's lowest flagged row is flagged too (``score > threshold``).
        """
        y = np.asarray(is_outlier).astype(bool)
        scores = self.score(X)[0] if scores is None else scores
        if len(y) != len(scores):
            raise DetectorError(f"is_outlier: expected one label per row ({len(scores)}), got {len(y)}")
        if not y.any() or y.all():
            raise DetectorError(
                "threshold.method=f1: the labelled batch needs normal and outlier rows "
                f"(split.threshold.perc_outlier > 0), got {int(y.sum())} outliers of {len(y)}"
            )
        self.threshold = best_f1_cut(scores, y)
        self.threshold_info = {"method": "f1", "rows": len(scores)}
        return self.threshold

    def predict(self, X: np.ndarray | pd.DataFrame) -> Prediction:
        if self.threshold is None:
            raise DetectorError("no threshold: call an infer_threshold*() method first (percentile, fpr or f1)")
        inst, feat = self.score(X)
        return Prediction(inst, feat, (inst > self.threshold).astype(np.int8), self.threshold)

    # -- explanations -----------------------------------------------------------------------
    def explain(
        self, X: np.ndarray | pd.DataFrame, k: int = 3, *, prediction: Prediction | None = None
    ) -> pd.DataFrame:
        """The ``k`` raw KDD features that drove each row's score, with their share of it
        (:func:`kddad.explain.top_features`: columns ``feature_1, share_1, …``).

        ``prediction``: reuse the scores of :meth:`predict` on the same rows instead of scoring.
        """
        if not self.has_feature_scores:
            raise DetectorError(f"model {self.model.name!r} has no per-feature scores to explain a score with")
        if k < 1:
            raise DetectorError(f"k: expected at least 1 feature per row, got {k}")
        feat = prediction.feature_score if prediction is not None else self.score(X)[1]
        if len(feat) != len(X):
            raise DetectorError(f"prediction: {len(feat)} rows, X has {len(X)}; pass the rows that were predicted")
        groups = self.encoder.groups if self.encoder is not None else ColumnGroup.each_column(feat.shape[1])
        return top_features(X, feat, self.feature_reference, groups, k)

    # -- description and persistence --------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What this detector is, as plain JSON values (``kddad info`` shows it)."""
        return {
            "model": self.model.model_dump(),
            "architecture": self.model.architecture,
            "score": self.score_cfg.model_dump(),
            "n_features": self.n_features,
            "seed": self.seed,
            "features": None if self.encoder is None else self.encoder.summary(),
            "training_data": self.data or None,
            "epochs": len(self.history),
            "kddad_version": self.kddad_version,
            "threshold": self.threshold,
            "threshold_info": self.threshold_info or None,
        }

    def save(self, path: str | Path) -> Path:
        """Write the detector folder atomically: JSON description, the model's own files, encoder."""
        description = {
            "format": detector_file.FORMAT,
            "kddad_version": __version__,
            "n_features": self.n_features,
            "seed": self.seed,
            "model": self.model.model_dump(),
            "score": self.score_cfg.model_dump(),
            "trainer": self.trainer.model_dump(),
            "early_stopping": self.early_stopping.model_dump(),
            "threshold": self.threshold,
            "threshold_info": self.threshold_info,
            "history": self.history,
            "data": self.data,
            "feature_reference": None if self.feature_reference is None else [float(v) for v in self.feature_reference],
        }
        return detector_file.save(path, description, self._fitted(), self.encoder)

    @classmethod
    def load(cls, path: str | Path, threshold: str | Path | None = None, device: str = "cpu") -> Detector:
        """Load a saved detector; nothing is built before its files are validated, nothing unpickled.

        ``threshold``: a threshold stage's JSON (``models/threshold.json``), whose threshold and
        scoring settings then apply, so the pipeline's detector is ready to ``predict``.
        ``device``: where it scores (see :meth:`to`).
        """
        saved = detector_file.load(path)
        desc = saved.description
        det = cls(desc.model, desc.score, desc.trainer, desc.early_stopping, saved.encoder, desc.seed)
        det.n_features, det.threshold, det.kddad_version = desc.n_features, desc.threshold, desc.kddad_version
        det.threshold_info = desc.threshold_info.model_dump(exclude_unset=True)
        det.history = [row.model_dump() for row in desc.history]
        det.data = desc.data.model_dump(exclude_unset=True)
        if desc.feature_reference is not None:
            det.feature_reference = np.asarray(desc.feature_reference, dtype=np.float32)
        with _as_detector_error():
            det.model_ = det._new_model().load(Path(path), det.n_features)
        if threshold is not None:
            det.use_threshold_file(threshold)
        return det.to(device)

    def use_threshold_file(self, file: str | Path) -> Detector:
        """Take the threshold and scoring settings of a threshold stage's JSON (``models/threshold.json``)."""
        found = detector_file.threshold_file(file, self.score_cfg.name)
        self.threshold = found.threshold
        self.set_score(**found.score)
        self.threshold_info = found.info
        return self
