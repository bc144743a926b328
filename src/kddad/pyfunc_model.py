"""The file MLflow runs to build the served detector (a model from code: nothing is unpickled).

MLflow executes it when the model loads; ``set_model`` names the model. See :mod:`kddad.pyfunc`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from kddad.errors import DataError
from kddad.pyfunc import FIRST_LINE, TOP_K, predict_records

log = logging.getLogger(__name__)


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


def _one_shot(mlflows: Callable) -> Callable:
    """The scoring server's answer writer, by the C JSON encoder: the same text.

    ``mlflow models serve`` writes each answer with ``json.dump``, which encodes in Python value by
    value (the C encoder serves only ``json.dumps``): for thousands of rows, longer than checking
    and scoring them. An answer with metadata goes through MLflow's own function.
    """
    from mlflow.pyfunc.scoring_server import NumpyEncoder

    def predictions_to_json(raw_predictions: Any, output: Any, metadata: dict | None = None) -> None:
        if metadata or not isinstance(raw_predictions, pd.DataFrame):
            return mlflows(raw_predictions, output, metadata)
        # the records pandas' to_dict gives (Python values), a column at a time
        columns = [str(c) for c in raw_predictions.columns]
        values = zip(*(raw_predictions[c].to_numpy().tolist() for c in raw_predictions.columns))
        records = [dict(zip(columns, row)) for row in values]
        output.write(json.dumps({"predictions": records}, cls=NumpyEncoder))

    return predictions_to_json


def parse_csv_input(csv_input: Any, schema: Any = None) -> pd.DataFrame:
    """A CSV request body (a header row, then records) as a frame whose faults name body lines.

    A malformed body is refused in one line naming its line, with nothing of its content."""
    try:
        df = pd.read_csv(csv_input)
    except pd.errors.EmptyDataError:
        raise RequestError(
            "request: the CSV body is empty; expected a header row of KDD column names, then records"
        ) from None
    except pd.errors.ParserError as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if found is None:
            raise RequestError(
                "request: the body is not readable as CSV; expected a header row, then records"
            ) from None
        want, line, got = found.groups()
        raise RequestError(
            f"request: CSV line {line}: expected {want} comma-separated fields (as the header row), got {got}"
        ) from None
    except (ValueError, UnicodeError) as err:
        raise RequestError(f"request: the body is not readable as CSV ({type(err).__name__})") from None
    df.attrs[FIRST_LINE] = 2  # the header is line 1
    return df


def _decoded(data: Any) -> Any:
    """A JSON request body decoded once, here: a fault answered with its position only."""
    if not isinstance(data, (bytes, str)):
        return data
    try:
        decoded = json.loads(data)
    except json.JSONDecodeError as err:
        raise RequestError(f"request: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except UnicodeDecodeError as err:
        raise RequestError(f"request: byte {err.start} of the body is not UTF-8 text; expected a JSON object") from None
    return decoded if isinstance(decoded, dict) else data  # MLflow answers the other kinds


def _without_echo(message: str) -> str:
    """MLflow's message for a refused request, without the request it quotes: the scoring
    server prefixes ``Failed to predict data '<the whole frame>'`` to a prediction's fault."""
    if message.startswith("Failed to predict data") and "\nError: " in message:
        message = message.split("\nError: ", 1)[1]
    return message.split("\nInput:", 1)[0].strip().splitlines()[0] if message.strip() else message


def _invocations(mlflows: Callable) -> Callable:
    """The scoring server's request handler, answering every refusal in one line: the JSON body
    decoded here (its fault's position, not the body), and no answer that quotes the request
    or carries a stack trace."""

    def invocations(data: Any, content_type: str | None, model: Any, input_schema: Any) -> Any:
        if (content_type or "").split(";")[0].strip() == "application/json":
            data = _decoded(data)
        try:
            return mlflows(data, content_type, model, input_schema)
        except RequestError:
            raise
        except MlflowException as err:
            trace = err.json_kwargs.pop("stack_trace", None)
            if trace:  # the server's log keeps it; the answer does not
                log.error("request refused (%s): %s", err.error_code, trace)
            err.message = _without_echo(err.message)
            raise

    return invocations


def serve_answers() -> None:
    """Install kddad's answers in the scoring server's module: in the server's process only (its
    module is imported before the model loads), once. The server looks these names up per request."""
    server = sys.modules.get("mlflow.pyfunc.scoring_server")
    if server is None or getattr(server.invocations, "mlflows", None) is not None:
        return
    for name, ours in (
        ("predictions_to_json", _one_shot),
        ("invocations", _invocations),
        ("parse_csv_input", lambda mlflows: parse_csv_input),
    ):
        mlflows = getattr(server, name)
        replaced = ours(mlflows)
        replaced.mlflows = mlflows
        setattr(server, name, replaced)


class DetectorModel(PythonModel):
    """Scores records with the detector in the model's artifacts (``KDDAD_DEVICE``: where; default auto)."""

    def load_context(self, context: Any) -> None:
        from kddad.detector import Detector

        self.detector = Detector.load(
            context.artifacts["detector"],
            threshold=context.artifacts.get("threshold"),
            device=os.environ.get("KDDAD_DEVICE", "auto"),
        )
        serve_answers()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return predict_records(self.detector, model_input, int((params or {}).get("top_k", TOP_K)))
        except DataError as err:
            raise RequestError(str(err)) from None


set_model(DetectorModel())
