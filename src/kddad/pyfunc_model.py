"""The file MLflow runs to build the served detector (a model from code: nothing is unpickled).

MLflow executes it when the model loads; ``set_model`` names the model. See :mod:`kddad.pyfunc`.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from kddad.pyfunc import TOP_K, predict_records


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
        return predict_records(self.detector, model_input, int((params or {}).get("top_k", TOP_K)))


set_model(DetectorModel())
