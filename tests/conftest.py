"""Shared fixtures: the real data files (KDDAD_DATA_MIRROR, else ../shared/data) and configs."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from kddad import config
from kddad.data.read import read_kdd

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: each worker, and every process it starts, computes on one
    # thread (torch and BLAS would otherwise each take every core, and spin against each other)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
KDD10 = "kddcup.data_10_percent.gz"


@pytest.fixture(scope="session", autouse=True)
def _outside_the_repo(tmp_path_factory):
    """Run from a scratch folder: a library call resolves a relative MLflow URI against the project
    (the folder holding dvc.yaml at or above the working folder), and no test may write the repo's
    own mlflow.db. Tests of the commands users type run them in a copy of the repo instead."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The folder holding the real data files; tests fail (not skip) without it."""
    path = Path(os.environ.get("KDDAD_DATA_MIRROR", ROOT.parent / "shared" / "data"))
    for name in (KDD10, "KDDTest+.txt"):
        if not (path / name).is_file():
            pytest.fail(
                f"real data not found: {path / name}; set KDDAD_DATA_MIRROR to the folder holding "
                f"{KDD10} and NSL-KDD's KDDTest+.txt"
            )
    return path


@pytest.fixture(scope="session")
def kdd(mirror: Path) -> pd.DataFrame:
    """All 494,021 parsed rows of the 10% file (read once per session)."""
    return read_kdd(mirror / KDD10)


@pytest.fixture
def cfg() -> config.Config:
    """The committed default configuration."""
    return config.load(ROOT / "params.yaml")


def with_keys(cfg: config.Config, **groups: Any) -> config.Config:
    """``cfg`` with keys changed: a dict merges into its group, anything else replaces it."""
    raw = cfg.model_dump()
    for group, value in groups.items():
        raw[group] = {**raw[group], **value} if isinstance(value, dict) and isinstance(raw[group], dict) else value
    return config.validate(raw)


def compose(*overrides: str, mirror: Path | None = None, **groups: Any) -> config.Config:
    """The default composition of conf/ with the quick smoke-run preset (``debug=quick``: 2 epochs,
    no progress bar, 2 latent samples) and Hydra ``overrides``, then ``groups`` as in
    :func:`with_keys`; the data come from ``mirror``. The one way tests shorten a run."""
    raw = yaml.safe_load(config.compose_yaml(ROOT / "conf", ["debug=quick", *overrides]))
    if mirror is not None:
        raw["download"]["mirror"] = str(mirror)
    return with_keys(config.validate(raw), **groups)


def use_preset(repo: Path, group: str, preset: str) -> None:
    """Make ``preset`` the default of ``group`` in a repo copy's conf/config.yaml (as a user would edit
    it), so that `dvc exp run` compositions use it too; params.yaml is recomposed."""
    conf = repo / "conf" / "config.yaml"
    text, n = re.subn(rf"^(  - (?:optional )?{group}: )\S+", rf"\g<1>{preset}", conf.read_text(), flags=re.M)
    assert n == 1, f"no default for {group} in {conf}"
    conf.write_text(text)
    (repo / "params.yaml").write_text(config.compose_yaml(repo / "conf"))


def write_head(src: Path, dst: Path, lines: int) -> Path:
    """Write the first ``lines`` lines of a real (gzipped) KDD file to ``dst``, gzipped if dst ends .gz."""
    opener = gzip.open if dst.suffix == ".gz" else open
    with gzip.open(src, "rt") as fin, opener(dst, "wt") as fout:
        for _, line in zip(range(lines), fin):
            fout.write(line)
    return dst


def copy_repo(dst: Path, mirror: Path) -> dict[str, str]:
    """The working tree (tracked and untracked-not-ignored files) as a fresh git repo at ``dst``, as a
    new user's clone; returns the environment a user's shell would have: the virtualenv's ``python``
    and ``dvc`` first on PATH, the data mirror set, nothing else of ours."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file() and not f.startswith(("dvc.lock", "reports/")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    env = {k: v for k, v in os.environ.items() if k not in ("KDDAD_CACHE", "DVC_ROOT", "MLFLOW_TRACKING_URI")}
    env.update(
        {
            "KDDAD_DATA_MIRROR": str(mirror),
            "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
    )
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=dst, env=env, check=True, capture_output=True)
    return env
