"""The one place that validates a composed configuration, reads params.yaml and composes conf/.

The DVC stages read ``params.yaml`` (the composed config); the Hydra entrypoint hands over its
composed ``DictConfig``. Both go through :func:`validate`, so an unknown key or an impossible
value stops the run before any work, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kddad.config.schema import MODEL_KINDS, Config
from kddad.errors import ConfigError


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration:"]
    for e in err.errors():
        loc = list(e["loc"])
        if len(loc) > 1 and loc[0] == "model" and loc[1] in MODEL_KINDS:
            del loc[1]  # pydantic names the union member: model.vae.latent → model.latent
        if loc == ["model"] and e["type"] == "union_tag_not_found":
            lines.append(f"  model.name: required key is missing (one of {', '.join(MODEL_KINDS)})")
            continue
        key = ".".join(str(p) for p in loc) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not in the schema; check its spelling)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and not isinstance(e["input"], (dict, list)):
                msg += f" (got {e['input']!r})"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def validate(cfg: Mapping[str, Any], source: str = "config") -> Config:
    """Check a composed config (dict or DictConfig) against the schema."""
    if not isinstance(cfg, dict):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    try:
        return Config.model_validate(cfg)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


def load(path: str | Path = "params.yaml") -> Config:
    """Read and validate the composed config a DVC stage runs with."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run `make params` to write the default composition of conf/") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config groups at the top level, got {type(raw).__name__}")
    return validate(raw, source=str(path))


def compose_yaml(config_dir: str | Path = "conf", overrides: list[str] | None = None) -> str:
    """Compose ``conf/`` and render it exactly as ``dvc exp run`` writes params.yaml."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(config_dir).resolve()), version_base=None):
        cfg = compose(config_name="config", overrides=overrides or [])
    OmegaConf.resolve(cfg)
    text = OmegaConf.to_yaml(cfg)
    validate(OmegaConf.to_container(cfg), source=f"{config_dir} {' '.join(overrides or [])}".strip())
    return text
