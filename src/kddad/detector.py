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
encoder, thresholds, ``predict`` and the saved description. Nothing is unpickled on load.

A detector folder is untrusted input. :meth:`Detector.load` validates ``detector.json`` whole
(:class:`DetectorFile`: every key, nested ones included, typed; unknown keys refused; the
threshold and feature reference finite; the history rows; the model, score, trainer and
early-stopping settings against the config schema) and ``encoder/encoder.json`` likewise
(:meth:`FeatureEncoder.load`), before anything is built from them; :meth:`Detector.save` checks
the same description before writing, so what it writes loads. Every refusal is a
:class:`DetectorError` of one line naming the file and the key.

The ``data`` block (:class:`DataInfo`: where the training rows came from) is data, recorded for
display: its ``file`` and ``source`` are strings that no code here (nor ``kddad info``) ever
opens, resolves or follows; they are refused if they hold control characters or newlines (no
terminal escape reaches a screen through ``kddad info``) or exceed 4,096 characters. A ``..`` in
them is legitimate (``dataset.path=../x.csv``) and is kept as written.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator

from kddad import __version__
from kddad.config import MODEL_ADAPTER, EarlyStoppingConfig, ModelConfig, ScoreConfig, SplitConfig, TrainerConfig
from kddad.errors import DataError, KddadError
from kddad.features.encoder import FeatureEncoder
from kddad.io import atomic_dir, write_json
from kddad.models.base import Model, model_class
from kddad.saved import Strict, Text, format_version, invalid, read_description

log = logging.getLogger(__name__)

_META, _ENCODER = "detector.json", "encoder"
FORMAT = 1


class DetectorError(KddadError):
    """A detector file is missing, tampered with, or does not fit the data it is given."""


# -- the saved description, detector.json ---------------------------------------------------
Count = Annotated[int, Field(strict=True, ge=0)]
Number = Annotated[float, Field(strict=True)]
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: the split protocols of the config schema (``split.protocol``)
SplitProtocol = SplitConfig.model_fields["protocol"].annotation


def _sha256(v: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", v):
        raise ValueError("expected 64 hexadecimal characters (a sha256)")
    return v


class DataInfo(Strict):
    """Where the training rows came from (``kddad.stages.model.training_data``): shown, never opened."""

    name: Text | None = None
    file: Text | None = None  # a file name or path as configured: a string, never opened
    sha256: Annotated[str, Field(strict=True), AfterValidator(_sha256)] | None = None
    source: Text | None = None  # a local path or URL as configured: a string, never opened
    split: SplitProtocol | None = None
    split_seed: Count | None = None
    rows: Count | None = None


class ThresholdInfo(Strict):
    """How the threshold was set (``infer_threshold*``, or a threshold stage's file)."""

    method: Literal["percentile", "fpr"] | None = None
    perc_outlier: Annotated[float, Field(strict=True, ge=0, lt=100)] | None = None
    fpr: Annotated[float, Field(strict=True, gt=0, lt=1)] | None = None
    rows: Count | None = None
    on: Text | None = None
    outliers_in_batch: Count | None = None
    flagged: Count | None = None
    flagged_outliers: Count | None = None
    mlflow_run_id: Text | None = None


class HistoryRow(Strict):
    """One epoch of the training history (a loss may be NaN: an epoch without validation)."""

    epoch: Count
    train_loss: Number
    val_loss: Number


class DetectorFile(Strict):
    """``detector.json``, every key checked; written by :meth:`Detector.save`."""

    format: Annotated[int, Field(strict=True), AfterValidator(format_version(FORMAT))]
    kddad_version: Text | None = None
    n_features: Annotated[int, Field(strict=True, gt=0)]
    seed: Count
    model: ModelConfig
    score: ScoreConfig
    trainer: TrainerConfig
    early_stopping: EarlyStoppingConfig
    threshold: Finite | None
    threshold_info: ThresholdInfo = ThresholdInfo()
    history: list[HistoryRow] = []
    data: DataInfo = DataInfo()
    feature_reference: list[Finite] | None = None

    @field_validator("feature_reference")
    @classmethod
    def _one_per_feature(cls, v: list[float] | None, info: ValidationInfo) -> list[float] | None:
        n = info.data.get("n_features")
        if v is not None and n is not None and len(v) != n:
            raise ValueError(f"expected {n} values, one per feature (n_features), got {len(v)}")
        return v


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
        return model_class(self.model).has_feature_scores

    @property
    def has_latent(self) -> bool:
        return model_class(self.model).has_latent

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
        if not model.has_feature_scores:
            log.info(
                "%s scores with its own anomaly score: the score settings (%s) do not apply",
                self.model.name,
                self.score_cfg.name,
            )
        self.history = model.fit(X, X_val, logger=logger, callbacks=callbacks)
        self.model_ = model
        if model.has_feature_scores:
            self.feature_reference = np.median(self.score(X_val)[1], axis=0).astype(np.float32)
        return self

    def to(self, device: str = "auto") -> Detector:
        """Score on ``device``: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:1``…

        The scores are the same on every device to float tolerance (latent draws come from the
        seed on the CPU). The scikit-learn baselines score on the CPU whatever is asked.
        """
        try:
            self._fitted().to(device)
        except DetectorError:
            raise
        except KddadError as err:
            raise DetectorError(str(err)) from None
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

    def predict(self, X: np.ndarray | pd.DataFrame) -> Prediction:
        if self.threshold is None:
            raise DetectorError("no threshold: call infer_threshold() or infer_threshold_fpr() first")
        inst, feat = self.score(X)
        return Prediction(inst, feat, (inst > self.threshold).astype(np.int8), self.threshold)

    # -- explanations -----------------------------------------------------------------------
    def explain(
        self, X: np.ndarray | pd.DataFrame, k: int = 3, *, prediction: Prediction | None = None
    ) -> pd.DataFrame:
        """The ``k`` raw KDD features that drove each row's score, with their share of it.

        A feature's contribution is its score above the median score of held-out normal rows
        (kept at ``fit``); the one-hot columns of a categorical feature are summed into that
        feature, shown with the row's value (``service=private``). ``share_i`` is the feature's
        part of the row's total excess (0 for a row with none). Columns ``feature_1, share_1, …``;
        ``prediction``: reuse the scores of :meth:`predict` on the same rows instead of scoring.
        """
        if not self.has_feature_scores:
            raise DetectorError(f"model {self.model.name!r} has no per-feature scores to explain a score with")
        if k < 1:
            raise DetectorError(f"k: expected at least 1 feature per row, got {k}")
        feat = prediction.feature_score if prediction is not None else self.score(X)[1]
        if len(feat) != len(X):
            raise DetectorError(f"prediction: {len(feat)} rows, X has {len(X)}; pass the rows that were predicted")
        excess = feat - (self.feature_reference if self.feature_reference is not None else 0)
        if self.encoder is not None:
            groups = self.encoder.groups
            names = np.array([g[0] for g in groups], dtype=object)
            excess = np.add.reduceat(excess, [g[1] for g in groups], axis=1)
        else:
            names = np.array([f"f{i}" for i in range(feat.shape[1])], dtype=object)
        k = min(k, excess.shape[1])
        positive = np.clip(excess, 0, None)
        total = positive.sum(1, keepdims=True)
        share = np.divide(positive, total, out=np.zeros_like(positive), where=total > 0)
        top = (
            np.argpartition(-excess, k - 1, axis=1)[:, :k]
            if k < excess.shape[1]
            else np.tile(np.arange(excess.shape[1]), (len(excess), 1))
        )
        order = np.argsort(-np.take_along_axis(excess, top, 1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, 1)
        out = {}
        for rank in range(k):
            idx = top[:, rank]
            labels = names[idx]
            if isinstance(X, pd.DataFrame) and self.encoder is not None:
                for col in self.encoder.categorical:
                    hit = idx == len(self.encoder.numeric) + self.encoder.categorical.index(col)
                    if hit.any():
                        labels[hit] = (col + "=" + X[col][hit].astype(str)).to_numpy(dtype=object)
            out[f"feature_{rank + 1}"] = labels
            out[f"share_{rank + 1}"] = np.take_along_axis(share, idx[:, None], 1)[:, 0].astype(np.float32)
        return pd.DataFrame(out, index=X.index if isinstance(X, pd.DataFrame) else None)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the detector folder atomically: JSON description, the model's own files, encoder."""
        model = self._fitted()
        path = Path(path)
        meta = {
            "format": FORMAT,
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
        try:  # what load would refuse is not written
            DetectorFile.model_validate(meta)
        except ValidationError as err:
            raise DetectorError(invalid(err, path / _META, DetectorFile, "cannot save this detector")) from None
        with atomic_dir(path) as tmp:
            model.save(tmp)
            write_json(tmp / _META, meta)
            if self.encoder is not None:
                self.encoder.save(tmp / _ENCODER)
        return path

    @classmethod
    def load(cls, path: str | Path, threshold: str | Path | None = None, device: str = "cpu") -> Detector:
        """Load a saved detector; the model refuses files that are not what its description says.

        ``threshold``: a threshold stage's JSON (``models/threshold.json``), whose threshold and
        scoring settings then apply, so the pipeline's detector is ready to ``predict``.
        ``device``: where it scores (see :meth:`to`).
        """
        path = Path(path)
        file = path / _META
        meta = read_description(file, "a detector description (detector.json)", DetectorError)
        try:
            desc = DetectorFile.model_validate(meta)
        except ValidationError as err:
            raise DetectorError(invalid(err, file, DetectorFile, "not a valid detector")) from None
        encoder = None
        if (path / _ENCODER).is_dir():
            try:
                encoder = FeatureEncoder.load(path / _ENCODER)
            except DataError as err:
                raise DetectorError(str(err)) from None
            if len(encoder.feature_names) != desc.n_features:
                raise DetectorError(
                    f"{file}: not a valid detector: key 'n_features': {desc.n_features}, but "
                    f"{path / _ENCODER / 'encoder.json'} encodes rows into {len(encoder.feature_names)} features"
                )
        det = cls(desc.model, desc.score, desc.trainer, desc.early_stopping, encoder, desc.seed)
        det.n_features, det.threshold, det.kddad_version = desc.n_features, desc.threshold, desc.kddad_version
        det.threshold_info = desc.threshold_info.model_dump(exclude_unset=True)
        det.history = [row.model_dump() for row in desc.history]
        det.data = desc.data.model_dump(exclude_unset=True)
        if desc.feature_reference is not None:
            det.feature_reference = np.asarray(desc.feature_reference, dtype=np.float32)
        try:
            det.model_ = det._new_model().load(path, det.n_features)
        except DetectorError:
            raise
        except KddadError as err:
            raise DetectorError(str(err)) from None
        if threshold is not None:
            det.use_threshold_file(threshold)
        return det.to(device)

    def use_threshold_file(self, file: str | Path) -> Detector:
        """Take the threshold and scoring settings of a threshold stage's JSON (``models/threshold.json``)."""
        file = Path(file)
        info = read_threshold(file)
        score = info.get("score") or {}
        if not isinstance(score, dict):
            raise DetectorError(f"{file}: key 'score': expected a mapping of score settings, got {score!r}")
        if score.get("name", self.score_cfg.name) != self.score_cfg.name:
            raise DetectorError(
                f"{file}: set for score {score.get('name')!r}, the detector scores {self.score_cfg.name!r}"
            )
        self.threshold = info["threshold"]
        self.set_score(**{k: score[k] for k in ScoreConfig.scoring_only() if k in score})
        # what a saved detector records of it (ThresholdInfo): the file's other keys are its own
        self.threshold_info = {k: v for k, v in info.items() if k in ThresholdInfo.model_fields}
        return self


def finite_threshold(value: Any, where: str) -> float:
    """A threshold as a float; refuses NaN, infinities, booleans and non-numbers, naming ``where``.

    A NaN threshold flags nothing (every comparison is false) and would pass as F1 0.0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DetectorError(f"{where}: expected a finite number as the threshold, got {value!r}")
    return float(value)


def read_threshold(file: str | Path) -> dict[str, Any]:
    """The threshold stage's JSON (``models/threshold.json``), its threshold checked finite."""
    file = Path(file)
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DetectorError(f"{file}: not found; run the threshold stage first (dvc repro threshold)") from None
    except (OSError, ValueError) as err:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise DetectorError(f"{file}: not a threshold file ({type(err).__name__}: {err})") from None
    if not isinstance(info, dict) or "threshold" not in info:
        raise DetectorError(f"{file}: expected a JSON object with a key 'threshold'")
    info["threshold"] = finite_threshold(info["threshold"], f"{file}: key 'threshold'")
    return info
