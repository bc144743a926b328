"""A saved detector folder: ``detector.json`` (:class:`DetectorFile`), the model's own files and the
encoder; and a threshold stage's file (``models/threshold.json``).

A detector folder is untrusted input. :func:`load` validates ``detector.json`` whole (every key,
nested ones included, typed; unknown keys refused; the threshold and feature reference finite;
the history rows; the model, score, trainer and early-stopping settings against the config
schema) and ``encoder/encoder.json`` likewise (:meth:`FeatureEncoder.load`), before anything is
built from them; :func:`save` checks the same description before writing, so what it writes
loads. Every refusal is a :class:`DetectorError` of one line naming the file and the key.

The ``data`` block (:class:`DataInfo`: where the training rows came from) is data, recorded for
display: its ``file`` and ``source`` are strings that no code here (nor ``kddad info``) ever
opens, resolves or follows; they are refused if they hold control characters or newlines (no
terminal escape reaches a screen through ``kddad info``) or exceed 4,096 characters. A ``..`` in
them is legitimate (``dataset.path=../x.csv``) and is kept as written.

This module knows files, not the :class:`~kddad.detector.Detector`: it sits below it, with the
model and encoder modules.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator

from kddad.config import EarlyStoppingConfig, ModelConfig, ScoreConfig, SplitConfig, TrainerConfig
from kddad.errors import DataError, DetectorError
from kddad.features.encoder import FeatureEncoder
from kddad.io import atomic_dir, write_json
from kddad.models.base import Model
from kddad.saved import Finite, Strict, Text, format_version, invalid, read_validated

DESCRIPTION, ENCODER = "detector.json", "encoder"
FORMAT = 1


Count = Annotated[int, Field(strict=True, ge=0)]
Number = Annotated[float, Field(strict=True)]
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

    method: Literal["percentile", "f1", "fpr"] | None = None
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
    """``detector.json``, every key checked; written by :func:`save`."""

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


# -- the detector folder ----------------------------------------------------------------------
def save(path: str | Path, description: dict[str, Any], model: Model, encoder: FeatureEncoder | None) -> Path:
    """Write the folder atomically: ``description`` (checked as :func:`load` will), the model's files, encoder."""
    path = Path(path)
    try:  # what load would refuse is not written
        DetectorFile.model_validate(description)
    except ValidationError as err:
        raise DetectorError(invalid(err, path / DESCRIPTION, DetectorFile, "cannot save this detector")) from None
    with atomic_dir(path) as tmp:
        model.save(tmp)
        write_json(tmp / DESCRIPTION, description)
        if encoder is not None:
            encoder.save(tmp / ENCODER)
    return path


@dataclass(frozen=True)
class Saved:
    """A detector folder's description and encoder, both validated; the model's files are its own to read."""

    description: DetectorFile
    encoder: FeatureEncoder | None


def load(path: str | Path) -> Saved:
    """Read and validate ``detector.json`` and the encoder, refusing an encoder of another width."""
    path = Path(path)
    file = path / DESCRIPTION
    desc = read_validated(
        file, DetectorFile, "a detector description (detector.json)", "not a valid detector", DetectorError
    )
    encoder = None
    if (path / ENCODER).is_dir():
        try:
            encoder = FeatureEncoder.load(path / ENCODER)
        except DataError as err:
            raise DetectorError(str(err)) from None
        if len(encoder.feature_names) != desc.n_features:
            raise DetectorError(
                f"{file}: not a valid detector: key 'n_features': {desc.n_features}, but "
                f"{path / ENCODER / 'encoder.json'} encodes rows into {len(encoder.feature_names)} features"
            )
    return Saved(desc, encoder)


# -- a threshold stage's file -----------------------------------------------------------------
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


@dataclass(frozen=True)
class ThresholdFile:
    """What a threshold stage's file sets on a detector (:func:`threshold_file`)."""

    threshold: float
    score: dict[str, Any]  # scoring-only settings (``ScoreConfig.scoring_only()``)
    info: dict[str, Any]  # what a saved detector records of it (:class:`ThresholdInfo`)


def threshold_file(file: str | Path, score_name: str) -> ThresholdFile:
    """A threshold stage's file for a detector scoring with ``score_name``; refuses one set for another score."""
    file = Path(file)
    info = read_threshold(file)
    score = info.get("score") or {}
    if not isinstance(score, dict):
        raise DetectorError(f"{file}: key 'score': expected a mapping of score settings, got {score!r}")
    if score.get("name", score_name) != score_name:
        raise DetectorError(f"{file}: set for score {score.get('name')!r}, the detector scores {score_name!r}")
    return ThresholdFile(
        info["threshold"],
        {k: score[k] for k in ScoreConfig.scoring_only() if k in score},
        # the file's other keys are its own
        {k: v for k, v in info.items() if k in ThresholdInfo.model_fields},
    )
