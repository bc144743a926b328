"""Shared by the benchmarks: a composed config and its data stages' outputs, cached by content."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from kddad import config
from kddad.paths import Paths
from kddad.stages.data import download, encode, split

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"


def prepared(overrides: list[str] | None = None) -> tuple[config.Config, Paths]:
    """Compose conf/ with ``overrides`` and run the data stages, once per distinct data config."""
    cfg = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", overrides or [])))
    mirror = os.environ.get("KDDAD_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))
    cfg = cfg.model_copy(update={"download": cfg.download.model_copy(update={"mirror": mirror})})
    data_cfg = {k: cfg.model_dump()[k] for k in ("dataset", "split", "features", "scaling")}
    key = hashlib.sha256(json.dumps(data_cfg, sort_keys=True).encode()).hexdigest()[:12]
    paths = Paths(CACHE / key)
    if not (paths.features / "meta.json").is_file():
        download(cfg, paths)
        split(cfg, paths)
        encode(cfg, paths)
    return cfg, paths
