"""Where each stage reads and writes, relative to the project root (mirrors dvc.yaml)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept a str too

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def split(self) -> Path:
        return self.root / "data" / "split"

    @property
    def features(self) -> Path:
        return self.root / "data" / "features"

    @property
    def encoder(self) -> Path:
        return self.root / "models" / "encoder"

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
