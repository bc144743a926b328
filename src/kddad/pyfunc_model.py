"""The file MLflow runs to build the served detector (a model from code: nothing is unpickled).

MLflow executes it when the model loads; ``set_model`` names the model. See :mod:`kddad.pyfunc`.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from kddad.errors import DataError
from kddad.pyfunc import TOP_K, predict_records


class RequestError(MlflowException):
    """A request the detector refuses: ``mlflow models serve`` answers HTTP 400 with
    ``{"error_code": "INVALID_PARAMETER_VALUE", "message": <our one line>, …}`` and no stack trace.

    The scoring server rewrites the message of any MlflowException from ``predict`` into
    ``Failed to predict data '<the whole request>'. Error: …``; this one keeps the message it was
    made with and ignores that rewrite (any other exception would be answered with a generic
    message and the traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_message"):  # set once, by MlflowException.__init__
            self._message = value


class DetectorModel(PythonModel):
    """Scores records with the detector in the model's artifacts (``KDDAD_DEVICE``: where; default auto)."""

    def load_context(self, context: Any) -> None:
        from kddad.detector import Detector

        self.detector = Detector.load(
            context.artifacts["detector"],
            threshold=context.artifacts.get("threshold"),
            device=os.environ.get("KDDAD_DEVICE", "auto"),
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return predict_records(self.detector, model_input, int((params or {}).get("top_k", TOP_K)))
        except DataError as err:
            raise RequestError(str(err)) from None


set_model(DetectorModel())
