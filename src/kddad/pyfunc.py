"""The trained detector as an MLflow ``pyfunc`` model: ``mlflow models serve`` answers with scores.

Logged as a model from code (``pyfunc_model.py``, which MLflow runs to build the model), with the
detector folder and threshold file as artifacts and kddad's source as code: loading it unpickles
nothing of ours, it calls :meth:`Detector.load`. MLflow is imported only to log. Input: the 41
raw KDD columns, one row per connection (a label column may ride along and is ignored). Output
per row: ``instance_score``, ``is_outlier`` and the top features with their shares (``top_k``
as a request parameter).
"""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from kddad.data import schema

log = logging.getLogger(__name__)

ARTIFACT = "detector"  # runs:/<run id>/detector
TOP_K = 3
_REQUIREMENTS = ("torch", "numpy", "pandas", "pyarrow", "scikit-learn", "pydantic", "pyyaml", "mlflow")


def predict_records(det: Any, model_input: pd.DataFrame, top_k: int = TOP_K) -> pd.DataFrame:
    """What the served model answers for a frame of records (the 41 KDD columns, by name)."""
    from kddad.data.records import canonical, check_values
    from kddad.errors import DataError

    df = pd.DataFrame(model_input).rename(columns=canonical)
    missing = [c for c in schema.FEATURES if c not in df.columns]
    if missing:
        raise DataError(f"request: missing KDD column(s) {missing}")
    df = df[list(schema.FEATURES)].reset_index(drop=True)
    check_values(df, "request", 1)
    pred = det.predict(df)
    out = pd.DataFrame({"instance_score": pred.instance_score.astype(float), "is_outlier": pred.is_outlier})
    if top_k and det.has_feature_scores:
        out = pd.concat([out, det.explain(df, top_k, prediction=pred)], axis=1)
    return out


def signature(top_k: int = TOP_K):
    """Inputs: the 41 KDD columns (counts as long, rates as double, categories as string)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    def kind(col: str) -> str:
        return "string" if col in schema.CATEGORICAL else "double" if col in schema.FLOAT_COLUMNS else "long"

    outputs = [ColSpec("double", "instance_score"), ColSpec("long", "is_outlier")]
    for i in range(1, top_k + 1):
        outputs += [ColSpec("string", f"feature_{i}"), ColSpec("double", f"share_{i}")]
    return ModelSignature(
        inputs=Schema([ColSpec(kind(c), c) for c in schema.FEATURES]),
        outputs=Schema(outputs),
        params=ParamSchema([ParamSpec("top_k", "long", top_k)]),
    )


def _requirements() -> list[str]:
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def log_detector(
    tracking_uri: str,
    run_id: str,
    detector: Path,
    threshold: Path,
    example: pd.DataFrame,
    register_as: str | None = None,
) -> str:
    """Log the detector into ``run_id`` as the pyfunc model ``detector``; returns its model URI.

    ``register_as``: also register a version of it under this name in the model registry.
    """
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT,
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"detector": str(detector), "threshold": str(threshold)},
                code_paths=[str(Path(__file__).parent)],
                signature=signature(),
                input_example=example[list(schema.FEATURES)].reset_index(drop=True),
                pip_requirements=_requirements(),
                registered_model_name=register_as,
            )
    finally:
        mlflow.set_tracking_uri(previous)
    log.info("MLflow model %s (runs:/%s/%s)", info.model_uri, run_id, ARTIFACT)
    return info.model_uri
