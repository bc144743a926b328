"""Where each stage reads and writes (mirrors dvc.yaml).

``root`` holds a run's models and reports. The data stages' outputs (raw file, splits, encoded
arrays, encoder) live under ``data_root``, the same folder by default; sweeps point it at a
cache shared by every job with the same data config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The file that marks a project's root folder.
PROJECT_MARKER = "dvc.yaml"
#: The threshold stage's file; ``kddad score`` also looks for it beside a detector folder.
THRESHOLD_FILE = "threshold.json"
#: Where a sweep's jobs share the data stages' outputs, unless KDDAD_CACHE says otherwise.
SWEEP_CACHE = Path("outputs") / "cache"
#: In a sweep's folder: the parent run's id and store, and the summary of its jobs.
SWEEP_PARENT, SWEEP_SUMMARY = "mlflow_parent.json", "summary"


def split_file(folder: Path, name: str) -> Path:
    """One split's rows in ``folder`` (the split stage's output, or its temporary folder)."""
    return folder / f"{name}.parquet"


def feature_files(folder: Path, name: str) -> tuple[Path, Path]:
    """One split's encoded rows and is_outlier labels in ``folder``: (X, y)."""
    return folder / f"{name}.npy", folder / f"{name}_y.npy"


def features_meta(folder: Path) -> Path:
    """What the encode stage records beside the arrays: feature names, rows, unseen categories."""
    return folder / "meta.json"


def project_root(start: str | Path | None = None) -> Path:
    """The project a run belongs to, where its shared MLflow store lives.

    ``DVC_ROOT`` when set (``dvc exp run --queue`` runs stages in a temporary copy; this is the
    real repo), else the nearest folder at or above ``start`` (default: the working folder) that
    holds ``dvc.yaml``, else ``start`` itself. Never a Hydra job's output folder.
    """
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path(start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / PROJECT_MARKER).is_file()), here)


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
        return self.root / "models" / THRESHOLD_FILE

    @property
    def train_curve(self) -> Path:
        """The train stage's per-epoch losses (a DVC plot)."""
        return self.root / "reports" / "train_curve.csv"

    @property
    def run_record(self) -> Path:
        """The MLflow run id the train stage opened, for the later stages."""
        return self.root / "models" / "mlflow_run.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def metrics(self) -> Path:
        """The evaluate stage's metrics (a DVC metrics file)."""
        return self.reports / "metrics.json"

    @property
    def alerts(self) -> Path:
        """The evaluate stage's highest-scoring test alerts."""
        return self.reports / "alerts.csv"

    @property
    def plots(self) -> Path:
        """The evaluate stage's DVC plot files."""
        return self.reports / "plots"

    @property
    def figures(self) -> Path:
        """The evaluate stage's PNG figures."""
        return self.reports / "figures"
