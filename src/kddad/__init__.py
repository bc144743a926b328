"""kddad: unsupervised network-intrusion detection with autoencoders on KDD Cup 1999.

``from kddad import Detector`` works, but loads torch only when asked for: the data stages
import this package and must start fast.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Detector", "FeatureEncoder"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from kddad.detector import Detector

        return Detector
    if name == "FeatureEncoder":
        from kddad.features.encoder import FeatureEncoder

        return FeatureEncoder
    raise AttributeError(f"module 'kddad' has no attribute {name!r}")
