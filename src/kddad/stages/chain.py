"""The whole chain for one configuration in one process, without DVC.

The Hydra entrypoint (pipelines/experiment.py, single runs and -m sweeps) drives this; it calls
the very stage functions DVC drives. Data preparation is cached by a hash of exactly the config
it depends on, so a sweep over model or score settings prepares the data once, and a sweep over
features prepares each variant once, however many jobs (or processes) ask for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kddad.config import Config
from kddad.paths import Paths
from kddad.stages.data import download, encode, split

log = logging.getLogger(__name__)

DATA_GROUPS = ("dataset", "split", "features", "scaling")  # what the data stages read (dvc.yaml)
#: Raised when the data stages' outputs change (a new split file): older cached folders are not reused.
DATA_FORMAT = 2


def data_key(cfg: Config) -> str:
    """A hash of the config the data stages depend on (not of how to fetch: download.*)."""
    dump = cfg.model_dump()
    key = {"format": DATA_FORMAT, **{g: dump[g] for g in DATA_GROUPS}}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (joblib, submitit jobs on one file system)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prepare_data(cfg: Config, cache: Path) -> Path:
    """Run download → split → encode into ``cache/<data key>`` unless it is already there."""
    folder = Path(cache) / data_key(cfg)
    done = folder / "DONE.json"
    with _locked(folder.with_suffix(".lock")):
        if done.is_file():
            log.info("data: cached in %s", folder)
        else:
            paths = Paths(folder)
            download(cfg, paths)
            split(cfg, paths)
            encode(cfg, paths)
            done.write_text(json.dumps({g: cfg.model_dump()[g] for g in DATA_GROUPS}, indent=2))
    return folder


def run_chain(
    cfg: Config, workdir: Path, cache: Path, parent_run: str | None = None, run_tags: dict[str, str] | None = None
) -> dict[str, Any]:
    """Prepare (or reuse) the data, then train, threshold and evaluate into ``workdir``."""
    from kddad.stages.evaluate import evaluate
    from kddad.stages.model import threshold, train

    paths = Paths(workdir, data_root=prepare_data(cfg, cache))
    train(cfg, paths, parent_run=parent_run, run_tags=run_tags)
    threshold(cfg, paths)
    return evaluate(cfg, paths)
