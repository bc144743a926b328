"""The trained detector as an MLflow ``pyfunc`` model: ``mlflow models serve`` answers with scores.

Logged as a model from code (``pyfunc_model.py``, which MLflow runs to build the model), with the
detector folder and threshold file as artifacts and kddad's source as code: loading it unpickles
nothing of ours, it calls :meth:`Detector.load`. MLflow is imported only to log. Input: the 41
raw KDD columns, one row per connection (a label column may ride along and is ignored). Output
per row: ``instance_score``, ``is_outlier`` and the top features with their shares (``top_k``
as a request parameter).

A bad request (a missing column, text or a null where a number goes, a negative count, a rate
outside [0, 1], a fractional count) is refused by :func:`predict_records` in one line naming the
row and column, which the server answers as HTTP 400 (see ``pyfunc_model.RequestError``). For
that, the signature sets out the outputs and the ``top_k`` parameter but no input schema (the
41 columns' types are in the model's metadata, ``input_types``, and its input example): MLflow
enforces an input schema before ``predict``, and would answer a typed column's fault with its
own message around a dump of the request (and truncate ``1.5`` to a count of 1 without a word),
while an untyped one is checked value by value in Python, at many times the cost of scoring.
"""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kddad.data import fields

if TYPE_CHECKING:
    from kddad.tracking import Tracker

log = logging.getLogger(__name__)

ARTIFACT = "detector"  # runs:/<run id>/detector
MODEL_TYPE = "anomaly detector"
TOP_K = 3
#: A request frame's ``attrs`` key: the body line of its first record (a CSV request's, after its header).
FIRST_LINE = "kddad_first_line"
_REQUIREMENTS = ("torch", "numpy", "pandas", "pyarrow", "scikit-learn", "pydantic", "pyyaml", "mlflow")


def _shown(value: Any) -> str:
    """A request's value as a message shows it: ``'abc'``, ``1.5``, ``True`` (not ``np.float64(1.5)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _numbers(values: pd.Series, col: str, unit: str, first: int) -> pd.Series:
    """A numeric request column as numbers (numeric text too); text, or true/false, is refused
    (naming the ``unit`` numbered from ``first``)."""
    from kddad.errors import DataError

    if pd.api.types.is_bool_dtype(values):
        flags = np.ones(len(values), bool)
    elif values.dtype == object:
        flags = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(bool)
    else:
        flags = np.zeros(len(values), bool)
    numeric = pd.to_numeric(values.mask(flags) if flags.any() else values, errors="coerce")
    bad = flags | (numeric.isna() & values.notna()).to_numpy()
    if bad.any():
        r = int(np.argmax(bad))
        expected = "a number" if col in fields.FLOAT_COLUMNS else "an integer"
        raise DataError(
            f"request: {unit} {first + r}, column {col!r}: expected {expected}, got {_shown(values.iloc[r])}"
        )
    return numeric.astype("float64")  # counts: whole numbers checked and made int64 by the caller


def predict_records(det: Any, model_input: pd.DataFrame, top_k: int = TOP_K) -> pd.DataFrame:
    """What the served model answers for a frame of records (the 41 KDD columns, by name).

    Checked as ``kddad score`` checks a file, its columns named as the file reader names them: the
    first fault is raised as a one-line :class:`~kddad.errors.DataError` naming the row (0-based,
    as in the answer) or, for a CSV request, the line of its body, and the column.
    """
    from kddad.data.columns import kdd_columns
    from kddad.data.records import as_counts, check_values
    from kddad.errors import DataError

    if top_k < 0:
        raise DataError(f"request: parameter 'top_k': expected a non-negative integer, got {top_k}")
    first_line = model_input.attrs.get(FIRST_LINE) if isinstance(model_input, pd.DataFrame) else None
    unit, first = ("line", first_line) if first_line else ("row", 0)
    df = pd.DataFrame(model_input)
    df.columns = kdd_columns(list(df.columns), "request: columns")
    df = df[list(fields.FEATURES)].reset_index(drop=True)
    dtypes = df.dtypes
    for col in fields.NUMERIC:
        if dtypes[col] != ("float64" if col in fields.FLOAT_COLUMNS else "int64"):  # numbers already: as they are
            df[col] = _numbers(df[col], col, unit, first)
    check_values(df, "request", first, unit=unit)
    df = as_counts(df)
    for col in fields.CATEGORICAL:
        df[col] = df[col].astype(str)
    pred = det.predict(df)
    out = pd.DataFrame({"instance_score": pred.instance_score.astype(float), "is_outlier": pred.is_outlier})
    if top_k and det.has_feature_scores:
        out = pd.concat([out, det.explain(df, top_k, prediction=pred)], axis=1)
    return out


def _kind(col: str) -> str:
    return "string" if col in fields.CATEGORICAL else "double" if col in fields.FLOAT_COLUMNS else "long"


def signature(top_k: int = TOP_K):
    """The outputs and the ``top_k`` parameter; no input schema (see the module's doc): every
    request reaches :func:`predict_records` and its checks as the client sent it."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    outputs = [ColSpec("double", "instance_score"), ColSpec("long", "is_outlier")]
    for i in range(1, top_k + 1):
        outputs += [ColSpec("string", f"feature_{i}"), ColSpec("double", f"share_{i}")]
    return ModelSignature(outputs=Schema(outputs), params=ParamSchema([ParamSpec("top_k", "long", top_k)]))


def _requirements() -> list[str]:
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def log_detector(
    tracker: Tracker,
    run_id: str,
    detector: Path,
    threshold: Path,
    example: pd.DataFrame,
    register_as: str | None = None,
    tags: dict[str, str] | None = None,
):
    """Log the detector into ``run_id`` as the pyfunc model ``detector``; returns MLflow's ``ModelInfo``.

    ``register_as``: also register a version of it under this name in the model registry. ``tags``:
    the logged model's (MLflow's Models tab shows them).
    """
    import mlflow

    # absolute now: the model is logged from the store's folder (Tracker.at_store)
    files = {"detector": str(Path(detector).resolve()), "threshold": str(Path(threshold).resolve())}

    def log_model():
        return mlflow.pyfunc.log_model(
            name=ARTIFACT,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts=files,
            code_paths=[str(Path(__file__).parent)],
            signature=signature(),
            input_example=example[list(fields.FEATURES)].reset_index(drop=True),
            pip_requirements=_requirements(),
            metadata={"input_types": {c: _kind(c) for c in fields.FEATURES}},
            registered_model_name=register_as,
            tags=tags,
            model_type=MODEL_TYPE,
        )

    info = tracker.log_model(run_id, log_model)
    log.info("MLflow model %s (runs:/%s/%s)", info.model_uri, run_id, ARTIFACT)
    return info
