"""The file MLflow runs to build the served detector (a model from code: nothing is unpickled).

See :mod:`kddad.pyfunc`.
"""

from mlflow.models import set_model

from kddad.pyfunc import DetectorModel

set_model(DetectorModel())
