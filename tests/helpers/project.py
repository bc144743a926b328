"""A project folder run the way DVC runs it: params.yaml, then ``python pipelines/<stage>.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from helpers.config import compose
from helpers.data import slice_overrides
from helpers.repo import ROOT
from helpers.run import run
from kddad import config
from kddad.paths import Paths
from kddad.stages.data import download, encode, split

#: A stage's environment: unbuffered output (a killed stage's log is whole), no queued-experiment root
#: The DVC stages, in order, and those a model or score change re-runs
STAGES = ("download", "split", "encode", "train", "threshold", "evaluate")
MODEL_STAGES = {"train", "threshold", "evaluate"}


def stages_ran(proc: subprocess.CompletedProcess) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` says it ran."""
    return {s for s in STAGES if f"Running stage '{s}'" in proc.stdout + proc.stderr}


ENV = {k: v for k, v in {**os.environ, "PYTHONUNBUFFERED": "1"}.items() if k != "DVC_ROOT"}


def write_params(project: Path, *overrides: str) -> config.Config:
    """params.yaml for ``project``: the quick default composition with the PCA baseline (quick to
    train) and ``overrides``, on the data file its params.yaml names already (``dataset=local``)."""
    data: list[str] = []
    if (project / "params.yaml").is_file():
        dataset = yaml.safe_load((project / "params.yaml").read_text())["dataset"]
        data = slice_overrides(Path(dataset["path"])) if dataset["name"] == "local" else []
    cfg = compose("model=pca", *data, *overrides)
    (project / "params.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    return cfg


def stage(project: Path, name: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``python pipelines/<name>.py`` run in ``project``, as DVC runs it; its exit code unchecked."""
    return run([sys.executable, ROOT / "pipelines" / f"{name}.py"], project, ENV, code=None, timeout=timeout, **kw)


def data_project(root: Path, data_file: Path) -> Path:
    """A project at ``root`` on the real data file ``data_file`` whose data stages ran in-process
    (data/, the encoder), nothing after them."""
    cfg = write_params(root, *slice_overrides(data_file))
    for step in (download, split, encode):
        step(cfg, Paths(root))
    return root
