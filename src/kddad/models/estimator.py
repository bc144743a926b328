"""The base of the scikit-learn models: one estimator, saved with skops (no pickle) and checked on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kddad.errors import KddadError
from kddad.models.base import History, Model, log_history

FILE = "baseline.skops"


class Estimator(Model):
    """A scikit-learn estimator fitted once (no epochs): ``estimator`` plus the ``state`` a kind adds."""

    #: the estimator's class name, checked on load
    expected: str = ""
    #: skops types trusted on load beyond its defaults
    trusted: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.estimator: Any = None

    def new(self) -> Any:
        """A fresh, unfitted estimator from the config."""
        raise NotImplementedError

    def fit_history(self, X: np.ndarray, X_val: np.ndarray) -> History:
        """Fit ``self.estimator`` (already built) on ``X``; returns a one-row history or none."""
        self.estimator.fit(X)
        return []

    def fit(self, X: np.ndarray, X_val: np.ndarray, *, logger: Any = False, callbacks: list | None = None) -> History:
        self.estimator = self.new()
        history = self.fit_history(X, X_val)
        log_history(logger, history)
        return history

    def state(self) -> dict[str, Any]:
        """What besides the estimator is saved (arrays, numbers)."""
        return {}

    def set_state(self, state: dict[str, Any], file: Path, n_features: int) -> None:
        """Take back :meth:`state`, checked."""

    def check(self, file: Path) -> None:
        """Kind-specific checks of a loaded estimator (e.g. tree indices)."""

    def save(self, folder: Path) -> None:
        import skops.io as sio

        sio.dump({"estimator": self.estimator, **self.state()}, folder / FILE)

    def load(self, folder: Path, n_features: int) -> Estimator:
        """Refuses files holding other types, another estimator, or one fitted on other features."""
        import skops.io as sio

        file = folder / FILE
        try:
            state = sio.load(file, trusted=list(self.trusted))
            self.estimator = state.pop("estimator")
        except Exception as err:
            raise KddadError(
                f"{file}: not a valid {self.cfg.name} baseline ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''})"
            ) from None
        if type(self.estimator).__name__ != self.expected:
            raise KddadError(f"{file}: holds a {type(self.estimator).__name__}, expected {self.expected}")
        if getattr(self.estimator, "n_features_in_", None) != n_features:
            raise KddadError(
                f"{file}: fitted on {getattr(self.estimator, 'n_features_in_', '?')} features, "
                f"the detector description says {n_features}"
            )
        self.set_state(state, file, n_features)
        self.check(file)
        return self
