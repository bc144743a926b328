"""Shared by the benchmarks: a composed config and its data stages' outputs, from the library's cache."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from kddad import config
from kddad.paths import Paths
from kddad.stages.chain import prepare_data

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"


def composed(overrides: list[str] | None = None) -> config.Config:
    """conf/ composed with ``overrides`` and validated (a :class:`~kddad.errors.ConfigError` naming the key)."""
    return config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", overrides or [])))


def prepared(overrides: list[str] | None = None) -> tuple[config.Config, Paths]:
    """Compose conf/ with ``overrides``; run the data stages once per distinct data config."""
    cfg = composed(overrides)
    mirror = os.environ.get("KDDAD_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))
    cfg = cfg.model_copy(update={"download": cfg.download.model_copy(update={"mirror": mirror})})
    return cfg, Paths(prepare_data(cfg, CACHE))
