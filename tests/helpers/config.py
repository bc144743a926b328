"""Configurations for tests: the quick composition of conf/, changed keys, a repo copy's presets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from helpers.repo import ROOT
from kddad import config


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


def use_local_file(repo: Path, path: Path) -> None:
    """Make the file at ``path`` a repo copy's data set: ``dataset=local`` with its path set in the
    copy's conf/dataset/local.yaml (a user's own file), so other data sets stay selectable."""
    local = repo / "conf" / "dataset" / "local.yaml"
    text, n = re.subn(r"^path: null", f"path: {path}", local.read_text(), flags=re.M)
    assert n == 1, f"no path key in {local}"
    local.write_text(text)
    use_preset(repo, "dataset", "local")
