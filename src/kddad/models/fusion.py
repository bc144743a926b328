"""``fusion``: member models of other kinds on the same rows, their scores fused as tail surprises.

Scores of different kinds live on different scales (a VAE's negative log-likelihood, NeuTraL AD's
contrastive loss), so they are not added as they are. Each member's score is first turned into a
surprise calibrated on the validation normals the fit already holds out: ``-log10`` of the share of
them the member scores at least as high, and beyond the ``tail`` quantile, where validation rows
are too few to count, an exponential tail fitted to the validation scores above it (peaks over a
threshold, the generalised Pareto tail of shape 0). The fused score is the sum of the members'
surprises: Fisher's combination of their p-values up to a factor, so a row rare under one member
and a row somewhat rare under several both stand out, and a member that separates a category no
other does still carries it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from kddad.config.schema import ScoreConfig, TrainerConfig
from kddad.errors import KddadError
from kddad.io import write_json
from kddad.models.base import History, Model, log_history, model_class
from kddad.saved import Finite, Strict, read_validated

CALIBRATION = "fusion.json"
MEMBERS = "members"
LN10 = float(np.log(10))


class Calibration(Strict):
    """One member's validation scores, sorted, and the exponential tail above the ``tail`` quantile."""

    reference: list[Finite] = Field(min_length=2)
    tail: Annotated[float, Field(strict=True, gt=0.5, lt=1)]
    tail_start: Finite
    tail_scale: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _sorted(self) -> Calibration:
        if any(b < a for a, b in zip(self.reference, self.reference[1:])):
            raise ValueError("reference: expected the validation scores in ascending order")
        return self

    @classmethod
    def fit(cls, scores: np.ndarray, tail: float) -> Calibration:
        ref = np.sort(np.asarray(scores, dtype=np.float64))
        start = float(np.quantile(ref, tail))
        excess = ref[ref > start] - start
        scale = float(excess.mean()) if excess.size else 0.0
        # a member whose top validation scores tie: the tail falls off within the smallest spacing seen
        scale = scale if scale > 0 else float(max(np.diff(np.unique(ref)).min(initial=1.0), 1e-12))
        return cls(reference=ref.tolist(), tail=tail, tail_start=start, tail_scale=scale)

    def surprise(self, scores: np.ndarray) -> np.ndarray:
        """-log10 of each score's tail share among the validation normals; non-decreasing in the score."""
        ref = np.asarray(self.reference)
        s = np.asarray(scores, dtype=np.float64)
        at_least = len(ref) - np.searchsorted(ref, s, side="left")
        counted = -np.log10((at_least + 1) / (len(ref) + 1))
        fitted = -np.log10(1 - self.tail) + (s - self.tail_start) / (self.tail_scale * LN10)
        return np.where(s > self.tail_start, np.maximum(counted, fitted), counted)


class CalibrationFile(Strict):
    """``fusion.json``: each member's calibration, by label."""

    members: dict[str, Calibration]


class Fusion(Model):
    """The members (:attr:`members_`, by label) and their :class:`Calibration`\\ s.

    A fused score is no sum over features, so the per-feature scores and the latent codes are
    those of the first member that has them (:meth:`explaining`): with the default's VAE, the
    features that drove its likelihood, the part of the score a feature can account for.
    """

    has_feature_scores = False
    has_latent = False

    @staticmethod
    def explaining(cfg: Any, capability: str) -> str | None:
        """The label of the first member with ``capability`` (``feature_scores_of``, ``latent_of``)."""
        return next((k for k, m in cfg.members.items() if getattr(model_class(m), capability)(m)), None)

    @classmethod
    def feature_scores_of(cls, cfg: Any) -> bool:
        return cls.explaining(cfg, "feature_scores_of") is not None

    @classmethod
    def latent_of(cls, cfg: Any) -> bool:
        return cls.explaining(cfg, "latent_of") is not None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members_: dict[str, Model] = {
            label: model_class(m)(m, self._score, self._trainer_of(label), self.early_stopping, self.seed)
            for label, m in self.cfg.members.items()
        }
        self.calibration: dict[str, Calibration] = {}

    def _trainer_of(self, label: str) -> TrainerConfig:
        """The trainer settings, capped at the member's own epochs where ``member_epochs`` sets
        them (``trainer.max_epochs`` still caps every member: a quick run stays quick)."""
        epochs = self.cfg.member_epochs.get(label)
        if epochs is None or epochs >= self.trainer.max_epochs:
            return self.trainer
        min_epochs = min(self.trainer.min_epochs, epochs)
        return self.trainer.model_copy(update={"max_epochs": epochs, "min_epochs": min_epochs})

    # the detector changes scoring settings on the model it holds: they reach every member
    @property
    def score_cfg(self) -> ScoreConfig:
        return self._score

    @score_cfg.setter
    def score_cfg(self, value: ScoreConfig) -> None:
        self._score = value
        for member in getattr(self, "members_", {}).values():
            member.score_cfg = value

    def fit(self, X: np.ndarray, X_val: np.ndarray, *, logger: Any = False, callbacks: list | None = None) -> History:
        """Each member in turn on the same rows; its history goes to ``logger`` under its label."""
        history: History = []
        for label, member in self.members_.items():
            rows = member.fit(X, X_val, logger=False, callbacks=callbacks)
            own = [{"epoch": r["epoch"], **{f"{label}.{k}": v for k, v in r.items() if k != "epoch"}} for r in rows]
            log_history(logger, own)
            history += [{**r, "epoch": len(history) + i} for i, r in enumerate(rows)]
        self.calibrate(X_val)
        return history

    def calibrate(self, X_val: np.ndarray) -> None:
        """Each member's surprise scale, from its scores of the validation normals."""
        self.calibration = {
            label: Calibration.fit(member.score(X_val)[0], self.cfg.tail) for label, member in self.members_.items()
        }

    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total, features = np.zeros(len(X)), np.empty((len(X), 0), dtype=np.float32)
        explaining = self.explaining(self.cfg, "feature_scores_of")
        for label, member in self.members_.items():
            scores, feature_scores = member.score(X)
            total += self.calibration[label].surprise(scores)
            if label == explaining:
                features = feature_scores
        return total, features

    def latent(self, X: np.ndarray) -> np.ndarray:
        label = self.explaining(self.cfg, "latent_of")
        return super().latent(X) if label is None else self.members_[label].latent(X)

    def to(self, device: str) -> Fusion:
        for member in self.members_.values():
            member.to(device)
        return self

    def save(self, folder: Path) -> None:
        for label, member in self.members_.items():
            (folder / MEMBERS / label).mkdir(parents=True)
            member.save(folder / MEMBERS / label)
        write_json(folder / CALIBRATION, {"members": {k: c.model_dump() for k, c in self.calibration.items()}})

    def load(self, folder: Path, n_features: int) -> Fusion:
        """Refuses a calibration file that does not cover exactly the configured members."""
        file = folder / CALIBRATION
        found = read_validated(
            file, CalibrationFile, "a fusion's calibration (fusion.json)", "not a valid calibration", KddadError
        )
        if set(found.members) != set(self.members_):
            raise KddadError(
                f"{file}: calibrates members {sorted(found.members)}, the detector description sets out "
                f"{sorted(self.members_)}"
            )
        for label, member in self.members_.items():
            self.members_[label] = member.load(folder / MEMBERS / label, n_features)
        self.calibration = found.members
        return self
