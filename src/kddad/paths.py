"""Where each stage reads and writes (mirrors dvc.yaml).

``root`` holds a run's models and reports. The data stages' outputs (raw file, splits, encoded
arrays, encoder) live under ``data_root``, the same folder by default; sweeps point it at a
cache shared by every job with the same data config.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")
    data_root: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept a str too
        object.__setattr__(self, "data_root", Path(self.data_root) if self.data_root is not None else self.root)

    @property
    def raw(self) -> Path:
        return self.data_root / "data" / "raw"

    @property
    def split(self) -> Path:
        return self.data_root / "data" / "split"

    @property
    def features(self) -> Path:
        return self.data_root / "data" / "features"

    @property
    def encoder(self) -> Path:
        return self.data_root / "models" / "encoder"

    @property
    def split_report(self) -> Path:
        return self.data_root / "reports" / "split.json"

    @property
    def detector(self) -> Path:
        return self.root / "models" / "detector"

    @property
    def threshold(self) -> Path:
        return self.root / "models" / "threshold.json"

    @property
    def run(self) -> Path:
        """The MLflow run id the train stage opened, for the later stages."""
        return self.root / "models" / "mlflow_run.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
