"""What a run's configuration changes against the project's committed ``params.yaml``: what
``dvc exp run -S`` (or a hand edit) set, as ``key=value`` overrides, for a run to be named and
described by."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kddad.config.load import validate
from kddad.config.schema import Config
from kddad.errors import ConfigError

PARAMS = "params.yaml"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``score.samples``): what MLflow's params and metrics are named."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _shown(value: Any) -> str:
    """A value as a Hydra or ``dvc exp run -S`` override writes it: ``1``, ``true``, ``[64,32]``."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def committed_config(root: Path) -> Config | None:
    """``params.yaml`` as git's HEAD holds it, validated; None outside a git repository, where it
    is not committed, or where it no longer fits the schema."""
    try:
        proc = subprocess.run(["git", "show", f"HEAD:./{PARAMS}"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        tree = yaml.safe_load(proc.stdout)
        return validate(tree, f"HEAD:{PARAMS}") if isinstance(tree, dict) else None
    except (yaml.YAMLError, ConfigError):
        return None


def changes(cfg: Config, root: Path) -> dict[str, Any] | None:
    """What ``cfg`` sets otherwise than the committed ``params.yaml`` (dotted keys, in the
    config's order); ``{}``: the committed settings; None where there is no committed version."""
    committed = committed_config(root)
    if committed is None:
        return None
    before, now = flatten(committed.model_dump()), flatten(cfg.model_dump())
    return {k: v for k, v in now.items() if k not in before or before[k] != v}


def overrides(changed: dict[str, Any]) -> list[str]:
    """Every change as an override (``score.samples=1``)."""
    return [f"{k}={_shown(v)}" for k, v in changed.items()]


def in_short(changed: dict[str, Any]) -> list[str]:
    """The changes as a user would type them: a group whose ``name`` changed as the group's
    choice (``features=alibi18``, not its expanded column lists), other keys as they are."""
    groups = {k.rsplit(".", 1)[0] for k in changed if k.endswith(".name") and k.count(".") == 1}
    out: list[str] = []
    for key, value in changed.items():
        group = key.split(".", 1)[0]
        if group not in groups:
            out.append(f"{key}={_shown(value)}")
        elif f"{group}.name" == key:
            out.append(f"{group}={_shown(value)}")
    return out
