"""Shared fixtures: the real data files (KDDAD_DATA_MIRROR, else ../shared/data), slices of them,
configs and copies of the repo as a user's clone. Plain functions and constants: tests/helpers/."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from helpers.config import use_local_file, use_preset
from helpers.data import KDD10, NSL_TEST, SLICE_LINES, write_head
from helpers.repo import ROOT, Repo, copy_repo
from helpers.run import run

from kddad import config
from kddad.data.read import read_kdd

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: each worker, and every process it starts, computes on one
    # thread (torch and BLAS would otherwise each take every core, and spin against each other)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"

#: The longest files first: xdist hands tests out in collection order, so the two workers start on
#: the slowest and end together (a test-by-test hand-out balances better than whole files)
LONGEST_FIRST = (
    "test_dvc",
    "test_score",
    "test_dvc_experiments",
    "test_sweep",
    "test_entry_points",
    "test_mlflow_ui",
    "test_faults",
    "test_tracking_faults",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (stable: file order otherwise)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


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
    for name in (KDD10, NSL_TEST):
        if not (path / name).is_file():
            pytest.fail(
                f"real data not found: {path / name}; set KDDAD_DATA_MIRROR to the folder holding "
                f"{KDD10} and NSL-KDD's {NSL_TEST}"
            )
    return path


@pytest.fixture(scope="session")
def kdd(mirror: Path) -> pd.DataFrame:
    """All 494,021 parsed rows of the 10% file (read once per session)."""
    return read_kdd(mirror / KDD10)


@pytest.fixture(scope="session")
def kdd_slice(tmp_path_factory, mirror: Path) -> Path:
    """The first lines of the real 10% file (:data:`helpers.data.SLICE_LINES`), gzipped under the
    file's own name: the data of tests about the pipeline's mechanics rather than its results."""
    return write_head(mirror / KDD10, tmp_path_factory.mktemp("slice") / KDD10, SLICE_LINES)


@pytest.fixture
def cfg() -> config.Config:
    """The committed default configuration."""
    return config.load(ROOT / "params.yaml")


def _new_repo(dst: Path, mirror: Path, data_file: Path | None = None, quick: bool = True) -> Repo:
    """A fresh copy of the repo, on the quick preset (2 epochs, 2 latent samples: for `dvc exp run`
    compositions too) unless not ``quick``, on ``data_file`` if given; edits committed, as a user does."""
    repo = Repo(dst, copy_repo(dst, mirror))
    if quick:
        use_preset(dst, "debug", "quick")
    if data_file is not None:
        use_local_file(dst, data_file)
    if quick or data_file is not None:
        repo.commit("quick")
    return repo


@pytest.fixture(scope="module")
def clone(tmp_path_factory, mirror: Path) -> Repo:
    """A fresh copy of the repo with all its defaults, shared by a module's commands."""
    return _new_repo(tmp_path_factory.mktemp("clone"), mirror, quick=False)


@pytest.fixture
def repo(tmp_path: Path, mirror: Path) -> Repo:
    """A fresh clone-like copy of the repo, on the quick preset, nothing run yet."""
    return _new_repo(tmp_path / "repo", mirror)


@pytest.fixture
def sliced_repo(tmp_path: Path, mirror: Path, kdd_slice: Path) -> Repo:
    """A fresh copy of the repo on the quick preset and a slice of the real file (``dataset=local``)."""
    return _new_repo(tmp_path / "repo", mirror, kdd_slice)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, mirror: Path) -> Iterator[tuple[Repo, str]]:
    """A fresh copy of the repo after the README's `dvc repro` (the quick preset, the real file),
    and what that repro printed. Shared: tests only read it (or undo what they change)."""
    repo = _new_repo(tmp_path_factory.mktemp("pipeline"), mirror)
    proc = repo.dvc("repro")
    yield repo, proc.stdout + proc.stderr


@pytest.fixture
def ray_cluster(tmp_path):
    """A real one-node Ray cluster on this machine (2 CPUs), started as the README says, but in a
    folder of its own: its workers run there, not where the command is launched. One at a time
    across test workers: a machine runs one `ray start --head` cluster, and `ray stop` ends it."""
    from filelock import FileLock

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    with FileLock(Path(tempfile.gettempdir()) / "kddad-tests-ray-cluster.lock"):
        run(
            [*ray, "start", "--head", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
            elsewhere,
            timeout=180,
        )
        try:
            yield elsewhere
        finally:
            run([*ray, "stop", "--force"], code=None, timeout=120)
