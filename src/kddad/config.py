"""Typed schema of the composed configuration, and the one place that loads it.

The DVC stages read ``params.yaml`` (the composed config); the Hydra sweep entrypoint hands
over its composed ``DictConfig``. Both go through :func:`validate`, so an unknown key or an
impossible value stops the run before any work, naming the key.

``python -m kddad.config --write params.yaml`` regenerates params.yaml from ``conf/`` exactly
as ``dvc exp run`` does (compose, resolve, ``OmegaConf.to_yaml``).
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from kddad.data import schema
from kddad.errors import ConfigError

Percent = Annotated[float, Field(ge=0, lt=100)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    """What file to use: its identity (name, checksum) and where it is published."""

    name: str
    filename: str | None = None
    sha256: str | None = None
    rows: PosInt | None = None
    urls: list[str] = []
    path: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ValueError("expected 64 hexadecimal characters")
        return v.lower() if v else v

    @model_validator(mode="after")
    def _source(self) -> "DatasetConfig":
        if self.path is None and not self.urls:
            raise ValueError("set dataset.path (a local KDD-format file) or dataset.urls")
        if self.path is None and self.filename is None:
            raise ValueError("dataset.filename is required when dataset.path is not set")
        return self

    @property
    def raw_name(self) -> str:
        """File name under data/raw/."""
        return self.filename or Path(self.path or "").name


class DownloadConfig(_Strict):
    mirror: str | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 60


class BatchConfig(_Strict):
    n: PosInt | None = None
    perc_outlier: Percent = 0
    seed: NonNegInt | None = None


class PoolsConfig(_Strict):
    threshold: Fraction = 0.2
    test: Fraction = 0.3

    @model_validator(mode="after")
    def _room_for_train(self) -> "PoolsConfig":
        if self.threshold + self.test >= 1:
            raise ValueError("split.pools.threshold + split.pools.test must leave room for train (sum < 1)")
        return self


class SplitConfig(_Strict):
    """How rows become train / val / threshold / test (see :mod:`kddad.data.split`)."""

    protocol: Literal["grouped", "alibi_example", "dagmm"] = "grouped"
    seed: NonNegInt = 0
    dedupe: bool = False
    group_by: str | list[str] = "alibi18"
    pools: PoolsConfig = PoolsConfig()
    val_frac: Fraction = 0.1
    inlier: Literal["normal", "attack"] = "normal"  # the class trained on; dagmm's KDDCUP: attack
    outlier_frac: Fraction | None = None  # dagmm: subsample the anomaly class to this share of all rows
    train_frac: Fraction = 0.5  # dagmm: the random share of rows whose inliers train
    test_anomalies: Literal["half", "all"] = "half"  # dagmm: the test half's anomalies, or all (GOAD's code)
    train: BatchConfig = BatchConfig()
    val: BatchConfig = BatchConfig()
    threshold: BatchConfig = BatchConfig(n=10000, perc_outlier=5)
    test: BatchConfig = BatchConfig(n=20000, perc_outlier=10)

    @field_validator("group_by")
    @classmethod
    def _columns(cls, v: str | list[str]) -> str | list[str]:
        if not schema.feature_set(v):  # raises ValueError naming a bad name
            raise ValueError("list at least one column to group identical rows by")
        return v

    @field_validator("train", "val")
    @classmethod
    def _normal_only(cls, v: BatchConfig) -> BatchConfig:
        if v.perc_outlier:
            raise ValueError("train and val hold normal rows only: perc_outlier must be 0")
        return v

    @model_validator(mode="after")
    def _protocol_settings(self) -> "SplitConfig":
        if self.protocol != "dagmm":
            for key, default in (("inlier", "normal"), ("outlier_frac", None), ("train_frac", 0.5),
                                 ("test_anomalies", "half")):
                if getattr(self, key) != default:
                    raise ValueError(f"split.{key}: used by protocol dagmm only (protocol {self.protocol} "
                                     f"ignores it); leave it at {default!r} or set split.protocol=dagmm")
            return self
        if self.pools != PoolsConfig():
            raise ValueError("split.pools: protocol dagmm halves the rows at random (split.train_frac); "
                             "it has no pools, leave them at their defaults")
        for name in ("train", "val", "threshold", "test"):
            if getattr(self, name).seed is not None:
                raise ValueError(f"split.{name}.seed: protocol dagmm draws everything from split.seed; leave it null")
            if getattr(self, name).n is not None:
                raise ValueError(f"split.{name}.n: protocol dagmm takes whole halves, not batches of n rows; "
                                 "leave it null")
        if self.test.perc_outlier:
            raise ValueError("split.test.perc_outlier: protocol dagmm tests on the other half as it is; leave it 0")
        if not self.threshold.perc_outlier:
            raise ValueError("split.threshold.perc_outlier: protocol dagmm flags this share of the test scores "
                             "(the papers' 20); expected a value > 0")
        return self

    @property
    def group_columns(self) -> tuple[str, ...]:
        return schema.feature_set(self.group_by)


class FeaturesConfig(_Strict):
    name: str
    numeric: list[str]
    categorical: list[str] = []

    @model_validator(mode="after")
    def _known(self) -> "FeaturesConfig":
        for kind, cols, allowed in (("numeric", self.numeric, schema.NUMERIC),
                                    ("categorical", self.categorical, schema.CATEGORICAL)):
            bad = [c for c in cols if c not in allowed]
            if bad:
                raise ValueError(f"features.{kind}: {bad} are not {kind} KDD columns; expected some of {list(allowed)}")
            if len(set(cols)) != len(cols):
                raise ValueError(f"features.{kind} lists a column twice")
        if not self.numeric and not self.categorical:
            raise ValueError("features: select at least one column")
        return self

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class ScalingConfig(_Strict):
    method: Literal["standard", "minmax", "robust", "none"] = "standard"
    log1p: bool = False


class NetworkConfig(_Strict):
    """A Lightning-trained autoencoder (``ae``) or variational autoencoder (``vae``)."""

    name: Literal["ae", "vae"]
    hidden: list[PosInt]
    latent: PosInt
    activation: Literal["relu", "leaky_relu", "elu", "gelu", "tanh"] = "relu"
    output_activation: Literal["linear", "sigmoid"] = "linear"
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    batch_norm: bool = False
    beta: Annotated[float, Field(ge=0)] = 1.0
    recon_std: Annotated[float, Field(gt=0)] = 0.01
    lr: Annotated[float, Field(gt=0)] = 1e-3
    batch_size: PosInt = 128

    @field_validator("hidden", mode="before")
    @classmethod
    def _sizes(cls, v: Any) -> Any:
        """Also "64-32": Optuna's categorical choices must be scalars, so searches name sizes so."""
        if isinstance(v, str):
            try:
                return [int(part) for part in v.split("-")]
            except ValueError:
                raise ValueError(f"expected a list of layer sizes or a string like '64-32', got {v!r}") from None
        return v

    @model_validator(mode="after")
    def _shape(self) -> "NetworkConfig":
        if not self.hidden:
            raise ValueError("model.hidden: list at least one hidden layer size")
        return self


def _count_or_fraction(v: float, expected: str, one_is_fraction: bool = False) -> int | float:
    """A whole number ≥ 1 is a count (returned as int); a value in (0, 1) is a fraction."""
    if 0 < v < 1 or (one_is_fraction and v == 1):
        return float(v)
    if v >= 1 and float(v).is_integer():
        return int(v)
    raise ValueError(f"expected {expected}")


class IForestConfig(_Strict):
    """scikit-learn's IsolationForest, a baseline: its own anomaly score, no feature scores."""

    name: Literal["iforest"]
    n_estimators: PosInt = 100
    max_samples: float | Literal["auto"] = "auto"  # rows per tree: a count, a fraction ≤ 1, or "auto" (256)
    max_features: Annotated[float, Field(gt=0, le=1)] = 1.0
    n_jobs: int | None = None

    @field_validator("max_samples")
    @classmethod
    def _samples(cls, v: float | str) -> float | str:
        return v if v == "auto" else _count_or_fraction(v, '"auto", a row count (1, 2, …) or a fraction in (0, 1]',
                                                        one_is_fraction=True)


class PCAConfig(_Strict):
    """Principal component analysis, a baseline: the linear autoencoder, scored like the others."""

    name: Literal["pca"]
    n_components: float = 8  # a count of components, or a fraction < 1 of the variance to keep
    whiten: bool = False

    @field_validator("n_components")
    @classmethod
    def _components(cls, v: float) -> float:
        return _count_or_fraction(v, "a count of components (1, 2, …) or a fraction of variance in (0, 1)")


#: ``model.name`` picks the kind: ae | vae (networks), iforest | pca (scikit-learn baselines)
ModelConfig = Annotated[Union[NetworkConfig, IForestConfig, PCAConfig], Field(discriminator="name")]
MODEL_ADAPTER: TypeAdapter = TypeAdapter(ModelConfig)
NETWORKS = ("ae", "vae")
BASELINES = ("iforest", "pca")


class ScoreConfig(_Strict):
    name: Literal["mse", "likelihood"]
    samples: PosInt = 10
    outlier_perc: Annotated[float, Field(gt=0, le=100)] = 100
    min_var: Annotated[float, Field(gt=0)] = 1e-3


class ThresholdConfig(_Strict):
    method: Literal["percentile", "fpr"] = "percentile"
    perc_outlier: Percent | None = None
    fpr: Fraction = 0.05


class TrainerConfig(_Strict):
    """Lightning ``Trainer`` arguments under their Lightning names (a vetted subset)."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"] = "auto"
    devices: int | str | list[int] = "auto"
    precision: Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"] = "32-true"
    max_epochs: PosInt = 30
    min_epochs: NonNegInt = 1
    deterministic: bool = False
    gradient_clip_val: Annotated[float, Field(gt=0)] | None = None
    log_every_n_steps: PosInt = 50
    enable_progress_bar: bool = True

    @model_validator(mode="after")
    def _epochs(self) -> "TrainerConfig":
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"trainer.min_epochs ({self.min_epochs}) exceeds trainer.max_epochs ({self.max_epochs})")
        return self


class EarlyStoppingConfig(_Strict):
    """Early stopping on the loss of the normal-only validation split."""

    patience: NonNegInt = 5
    min_delta: Annotated[float, Field(ge=0)] = 0.0


class TrackingConfig(_Strict):
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "kddad"


class Config(_Strict):
    """The whole composed configuration (params.yaml)."""

    dataset: DatasetConfig
    download: DownloadConfig = DownloadConfig()
    split: SplitConfig = SplitConfig()
    features: FeaturesConfig
    scaling: ScalingConfig = ScalingConfig()
    model: ModelConfig
    score: ScoreConfig
    threshold: ThresholdConfig = ThresholdConfig()
    trainer: TrainerConfig = TrainerConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    tracking: TrackingConfig = TrackingConfig()
    seed: NonNegInt = 0

    @model_validator(mode="after")
    def _no_leak_through_features(self) -> "Config":
        outside = [c for c in self.split.group_columns if c not in self.features.columns]
        if outside:
            raise ValueError(
                f"split.group_by: {outside} are not among the features ({self.features.name}); rows identical "
                "on the features could then fall in train and test. Group by a subset of the features")
        return self


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration:"]
    for e in err.errors():
        loc = list(e["loc"])
        if len(loc) > 1 and loc[0] == "model" and loc[1] in (*NETWORKS, *BASELINES):
            del loc[1]  # pydantic names the union member: model.vae.latent → model.latent
        if loc == ["model"] and e["type"] == "union_tag_not_found":
            lines.append(f"  model.name: required key is missing (one of {', '.join((*NETWORKS, *BASELINES))})")
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="PATH", help="write the composition here (default: print it)")
    parser.add_argument("--config-dir", default="conf")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. features=all41")
    args = parser.parse_args(argv)
    text = compose_yaml(args.config_dir, args.overrides)
    if args.write:
        tmp = Path(f"{args.write}.tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.write)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
