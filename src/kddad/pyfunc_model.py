"""The file MLflow runs to build the served detector (a model from code: nothing is unpickled).

MLflow executes it when the model loads; ``set_model`` names the model. See :mod:`kddad.pyfunc`.
"""

from __future__ import annotations

import json
import os
import sys
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


def one_shot_answers() -> None:
    """The scoring server's answers written by the C JSON encoder: the same text.

    ``mlflow models serve`` writes each answer with ``json.dump``, which encodes in Python value by
    value (the C encoder serves only ``json.dumps``): for thousands of rows, longer than checking
    and scoring them. Installed in the server's process only (its module is imported before the
    model loads), once; an answer with metadata goes through MLflow's own function.
    """
    server = sys.modules.get("mlflow.pyfunc.scoring_server")
    if server is None or getattr(server.predictions_to_json, "one_shot", False):
        return
    mlflows = server.predictions_to_json

    def predictions_to_json(raw_predictions: Any, output: Any, metadata: dict | None = None) -> None:
        if metadata or not isinstance(raw_predictions, pd.DataFrame):
            return mlflows(raw_predictions, output, metadata)
        # the records pandas' to_dict gives (Python values), a column at a time
        columns = [str(c) for c in raw_predictions.columns]
        values = zip(*(raw_predictions[c].to_numpy().tolist() for c in raw_predictions.columns))
        records = [dict(zip(columns, row)) for row in values]
        output.write(json.dumps({"predictions": records}, cls=server.NumpyEncoder))

    predictions_to_json.one_shot = True
    predictions_to_json.mlflows = mlflows
    server.predictions_to_json = predictions_to_json


class DetectorModel(PythonModel):
    """Scores records with the detector in the model's artifacts (``KDDAD_DEVICE``: where; default auto)."""

    def load_context(self, context: Any) -> None:
        from kddad.detector import Detector

        self.detector = Detector.load(
            context.artifacts["detector"],
            threshold=context.artifacts.get("threshold"),
            device=os.environ.get("KDDAD_DEVICE", "auto"),
        )
        one_shot_answers()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return predict_records(self.detector, model_input, int((params or {}).get("top_k", TOP_K)))
        except DataError as err:
            raise RequestError(str(err)) from None


set_model(DetectorModel())
