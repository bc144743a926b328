"""The typed schema of the composed configuration: every group, key, type, default and meaning.

Each key is documented where it is declared (``Field(description=…)``); docs/configuration.md
is generated from these declarations (``python -m kddad.config --reference``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from kddad.data import fields

Percent = Annotated[float, Field(ge=0, lt=100)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
#: Marks a key that changes how a trained model scores, not what it learns (see ScoreConfig).
SCORING_ONLY = {"scoring_only": True}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataFileConfig(_Strict):
    """One raw file: its identity (checksums, rows) and where it is published."""

    filename: str | None = Field(
        None, description="File name under data/raw/ and in a mirror folder; null: the basename of `path`."
    )
    sha256: str | None = Field(
        None, description="Checksum the fetched file's bytes must have (64 hex digits); null: not checked."
    )
    records_sha256: str | None = Field(
        None,
        description="Checksum of the parsed records (values, not bytes: `0.00` and `0.0` agree); a file "
        "whose bytes miss `sha256` passes if its records match. Null: not checked.",
    )
    rows: PosInt | None = Field(None, description="Rows the file must parse into; null: not checked.")
    urls: list[str] = Field([], description="Canonical download URLs, tried in order after any mirror folder.")
    path: str | None = Field(
        None,
        description="A local KDD-format file to use instead of downloading "
        "(41 features + label, optionally NSL-KDD's difficulty; text or .gz).",
    )

    @field_validator("sha256", "records_sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ValueError("expected 64 hexadecimal characters")
        return v.lower() if v else v

    @model_validator(mode="after")
    def _source(self) -> DataFileConfig:
        if self.path is None and not self.urls:
            raise ValueError("set path (a local KDD-format file) or urls")
        if self.path is None and self.filename is None:
            raise ValueError("filename is required when path is not set")
        return self

    @property
    def raw_name(self) -> str:
        """File name under data/raw/."""
        return self.filename or Path(self.path or "").name


class DatasetConfig(DataFileConfig):
    """What data to use: the main file (trained on), and optionally a test file of its own."""

    name: str = Field(description="A short name for the data set, recorded as the run's `dataset` tag.")
    allow_unknown: bool = Field(
        False,
        description="Go on (with a warning) where a file has no `normal` row, or most of its rows hold labels of "
        "no known attack or categorical values the training rows never had: what a file in another spelling "
        "looks like. False: such a file stops the run, naming the likely cause.",
    )
    test: DataFileConfig | None = Field(
        None,
        description="A test file of its own (NSL-KDD's KDDTest+): all of it is the test set, and the main "
        "file gives train, val and the threshold batch (split.protocol=test_file). Null: one file.",
    )

    @model_validator(mode="after")
    def _distinct_files(self) -> DatasetConfig:
        if self.test is not None and self.test.raw_name == self.raw_name:
            raise ValueError(f"dataset.test: names the main file again ({self.raw_name}); expected another file")
        return self


class DownloadConfig(_Strict):
    """How to fetch (not what): no key here changes the verified file."""

    mirror: str | None = Field(
        None,
        description="A folder holding the data files, tried before the URLs (as is the KDDAD_DATA_MIRROR variable).",
    )
    timeout_s: Annotated[float, Field(gt=0)] = Field(
        60, description="Seconds to wait for a server before trying the next URL."
    )


class BatchConfig(_Strict):
    """One set of rows drawn from its pool (train, val, threshold, test)."""

    n: PosInt | None = Field(None, description="Rows to draw; null: every eligible row of the pool.")
    perc_outlier: Percent = Field(0, description="Percentage of attack rows in the batch (train and val: 0).")
    seed: NonNegInt | None = Field(None, description="Seed of this batch's draw; null: derived from split.seed.")


class PoolsConfig(_Strict):
    """Fractions of the row groups given to each evaluation pool; the rest is train/val."""

    threshold: Fraction = Field(0.2, description="Share of groups in the threshold pool.")
    test: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.3, description="Share of groups in the test pool (0 under protocol test_file: the test set is a file)."
    )

    @model_validator(mode="after")
    def _room_for_train(self) -> PoolsConfig:
        if self.threshold + self.test >= 1:
            raise ValueError("split.pools.threshold + split.pools.test must leave room for train (sum < 1)")
        return self


class SplitConfig(_Strict):
    """How rows become train / val / threshold / test (see :mod:`kddad.data.split`)."""

    protocol: Literal["grouped", "test_file", "alibi_example", "dagmm"] = Field(
        "grouped",
        description="grouped: leakage-free pools of row groups (default); test_file: as grouped without a "
        "test pool, the test set is dataset.test (NSL-KDD); alibi_example: alibi-detect's "
        "sampling (leaks); dagmm: random halves as in DAGMM/GOAD.",
    )
    seed: NonNegInt = Field(0, description="Seed of the split (independent of the training seed).")
    dedupe: bool = Field(False, description="Drop rows that repeat an earlier row exactly (41 features + label).")
    group_by: str | list[str] = Field(
        "alibi18",
        description="Rows equal on these columns (a feature set name, alibi18 | all41, or a list) share a pool.",
    )
    pools: PoolsConfig = Field(PoolsConfig(), description="Shares of groups in the evaluation pools.")
    val_frac: Fraction = Field(0.1, description="Share of train-pool groups held out for validation.")
    inlier: Literal["normal", "attack"] = Field("normal", description="dagmm: the class trained on (KDDCUP: attack).")
    outlier_frac: Fraction | None = Field(
        None, description="dagmm: subsample the anomaly class to this share of all rows; null: keep all."
    )
    train_frac: Fraction = Field(0.5, description="dagmm: the random share of rows whose inliers train.")
    test_anomalies: Literal["half", "all"] = Field(
        "half", description="dagmm: the test half's anomalies, or all of them (GOAD's code)."
    )
    train: BatchConfig = Field(BatchConfig(), description="The training rows (normal only).")
    val: BatchConfig = Field(BatchConfig(), description="The validation rows for early stopping (normal only).")
    threshold: BatchConfig = Field(
        BatchConfig(n=10000, perc_outlier=5), description="The labelled batch the percentile threshold is set on."
    )
    test: BatchConfig = Field(BatchConfig(n=20000, perc_outlier=10), description="The test set.")

    @field_validator("group_by")
    @classmethod
    def _columns(cls, v: str | list[str]) -> str | list[str]:
        if not fields.feature_set(v):  # raises ValueError naming a bad name
            raise ValueError("list at least one column to group identical rows by")
        return v

    @field_validator("train", "val")
    @classmethod
    def _normal_only(cls, v: BatchConfig) -> BatchConfig:
        if v.perc_outlier:
            raise ValueError("train and val hold normal rows only: perc_outlier must be 0")
        return v

    @model_validator(mode="after")
    def _protocol_settings(self) -> SplitConfig:
        if self.protocol == "grouped" and not self.pools.test:
            raise ValueError("split.pools.test: protocol grouped draws the test set from this pool; expected > 0")
        if self.protocol == "test_file":
            if self.pools.test:
                raise ValueError(
                    "split.pools.test: protocol test_file tests on dataset.test, it has no test pool; set it to 0"
                )
            if self.test != BatchConfig():
                raise ValueError(
                    "split.test: protocol test_file tests on all of dataset.test; leave n, perc_outlier "
                    "and seed unset (null, 0, null)"
                )
        if self.protocol != "dagmm":
            for key, default in (
                ("inlier", "normal"),
                ("outlier_frac", None),
                ("train_frac", 0.5),
                ("test_anomalies", "half"),
            ):
                if getattr(self, key) != default:
                    raise ValueError(
                        f"split.{key}: used by protocol dagmm only (protocol {self.protocol} "
                        f"ignores it); leave it at {default!r} or set split.protocol=dagmm"
                    )
            return self
        if self.pools != PoolsConfig():
            raise ValueError(
                "split.pools: protocol dagmm halves the rows at random (split.train_frac); "
                "it has no pools, leave them at their defaults"
            )
        for name in ("train", "val", "threshold", "test"):
            if getattr(self, name).seed is not None:
                raise ValueError(f"split.{name}.seed: protocol dagmm draws everything from split.seed; leave it null")
            if getattr(self, name).n is not None:
                raise ValueError(
                    f"split.{name}.n: protocol dagmm takes whole halves, not batches of n rows; leave it null"
                )
        if self.test.perc_outlier:
            raise ValueError("split.test.perc_outlier: protocol dagmm tests on the other half as it is; leave it 0")
        if not self.threshold.perc_outlier:
            raise ValueError(
                "split.threshold.perc_outlier: protocol dagmm flags this share of the test scores "
                "(the papers' 20); expected a value > 0"
            )
        return self

    @property
    def group_columns(self) -> tuple[str, ...]:
        return fields.feature_set(self.group_by)


class FeaturesConfig(_Strict):
    """Which KDD columns the model sees."""

    name: str = Field(description="A name for the selection, recorded as the run's `features` tag.")
    numeric: list[str] = Field(description="Numeric KDD columns, scaled.")
    categorical: list[str] = Field(
        [], description="Categorical KDD columns (protocol_type, service, flag), one-hot encoded."
    )

    @model_validator(mode="after")
    def _known(self) -> FeaturesConfig:
        for kind, cols, allowed in (
            ("numeric", self.numeric, fields.NUMERIC),
            ("categorical", self.categorical, fields.CATEGORICAL),
        ):
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
    """How numeric columns are scaled, with statistics of the normal training rows."""

    method: Literal["standard", "minmax", "robust", "none"] = Field("standard", description="scikit-learn scaler.")
    log1p: bool | str | list[str] = Field(
        "sizes_and_content",
        description="log(1 + x) first: true, every heavy-tailed count, size and duration; sizes_and_content, "
        "those less the bounded window counts (count, srv_count, dst_host_*count); or a list of columns.",
    )

    @field_validator("log1p")
    @classmethod
    def _log1p(cls, v: bool | str | list[str]) -> bool | str | list[str]:
        fields.log1p_columns(v)  # raises ValueError naming a bad set or column
        return v


def layer_sizes(v: Any) -> Any:
    """Layer widths as a list, also from "64-32": Optuna's categorical choices must be scalars, so
    searches name sizes so."""
    if isinstance(v, str):
        try:
            return [int(part) for part in v.split("-")]
        except ValueError:
            raise ValueError(f"expected a list of layer sizes or a string like '64-32', got {v!r}") from None
    return v


class _Layered(_Strict):
    """A kind with hidden layers (``hidden``), given as a list or as "64-32"."""

    @field_validator("hidden", mode="before", check_fields=False)
    @classmethod
    def _sizes(cls, v: Any) -> Any:
        return layer_sizes(v)

    @property
    def widths(self) -> str:
        """The hidden layers as in a run's architecture tag, e.g. '64-32'."""
        return "-".join(map(str, self.hidden))


class NetworkConfig(_Layered):
    """An autoencoder (``ae``) or variational autoencoder (``vae``), trained by epochs."""

    implementation: ClassVar[str] = "kddad.models.autoencoder:Autoencoder"

    name: Literal["ae", "vae"] = Field(description="ae: autoencoder; vae: variational autoencoder.")
    hidden: list[PosInt] = Field(description="Encoder layer widths (the decoder mirrors them); also '64-32'.")
    latent: PosInt = Field(description="Latent dimensions.")
    activation: Literal["relu", "leaky_relu", "elu", "gelu", "tanh"] = Field("relu", description="Hidden activation.")
    output_activation: Literal["linear", "sigmoid"] = Field("linear", description="Activation of the decoder mean.")
    dropout: Annotated[float, Field(ge=0, lt=1)] = Field(0.0, description="Dropout after each hidden layer.")
    batch_norm: bool = Field(False, description="Batch normalisation after each hidden layer.")
    beta: Annotated[float, Field(ge=0)] = Field(1.0, description="vae: weight of the KL term.")
    recon_std: Annotated[float, Field(gt=0)] = Field(
        0.01, description="vae + mse: the fixed standard deviation of the reconstruction term (alibi-detect's sim)."
    )
    lr: Annotated[float, Field(gt=0)] = Field(0.002, description="Adam's learning rate.")
    batch_size: PosInt = Field(512, description="Training rows per step.")

    @property
    def architecture(self) -> str:
        """e.g. 'vae 64-32 z8': tells presets with the same model name apart (a run tag)."""
        return f"{self.name} {self.widths} z{self.latent}"

    @model_validator(mode="after")
    def _shape(self) -> NetworkConfig:
        if not self.hidden:
            raise ValueError("model.hidden: list at least one hidden layer size")
        return self


class DeepSVDDConfig(_Layered):
    """Deep SVDD (Ruff et al. 2018), one-class: a bias-free network pulls the normal training rows
    towards a fixed centre (their mean initial embedding); a row's score is its squared distance to
    it. No feature scores (the score settings do not apply); the latent space is the embedding."""

    implementation: ClassVar[str] = "kddad.models.deep_svdd:DeepSVDD"

    name: Literal["deep_svdd"] = Field(description="Deep SVDD, one-class: distance to a centre in an embedding.")
    hidden: list[PosInt] = Field([64, 32], description="Hidden layer widths (no bias terms); also '64-32'.")
    rep_dim: PosInt = Field(16, description="Dimensions of the embedding the centre lives in.")
    activation: Literal["relu", "leaky_relu", "elu", "gelu"] = Field(
        "leaky_relu",
        description="Hidden activation; none bounded like tanh (a saturated unit maps every row alike).",
    )
    lr: Annotated[float, Field(gt=0)] = Field(0.001, description="Adam's learning rate.")
    weight_decay: Annotated[float, Field(ge=0)] = Field(1e-6, description="Adam's L2 penalty on the weights.")
    batch_size: PosInt = Field(512, description="Training rows per step.")

    @property
    def architecture(self) -> str:
        """e.g. 'deep_svdd 64-32 r16'."""
        return f"deep_svdd {self.widths} r{self.rep_dim}"


class NeuTraLConfig(_Layered):
    """NeuTraL AD (Qiu et al., ICML 2021), self-supervised: K learnable transformations of a row
    and an encoder trained so that each transformed view stays close to the row's own embedding
    and apart from the other views (the deterministic contrastive loss, DCL); a row's score is its
    DCL. No feature scores (the score settings do not apply); the latent space is the embedding."""

    implementation: ClassVar[str] = "kddad.models.neutral:NeuTraL"

    name: Literal["neutral"] = Field(description="NeuTraL AD: learnable transformations, contrastive loss.")
    transforms: Annotated[int, Field(ge=2)] = Field(11, description="Learnable transformations K.")
    transform_type: Literal["mul", "residual"] = Field(
        "mul", description="mul: x · sigmoid(T(x)), a learned soft mask; residual: x + T(x)."
    )
    transform_hidden: list[PosInt] = Field([64], description="Hidden widths of each transformation (no bias).")
    hidden: list[PosInt] = Field([64, 32], description="Encoder hidden widths (no bias terms); also '64-32'.")
    rep_dim: PosInt = Field(32, description="Dimensions of the embedding the views are compared in.")
    temperature: Annotated[float, Field(gt=0)] = Field(0.1, description="DCL's temperature of cosine similarity.")
    activation: Literal["relu", "leaky_relu", "elu", "gelu"] = Field("relu", description="Hidden activation.")
    lr: Annotated[float, Field(gt=0)] = Field(0.001, description="Adam's learning rate.")
    batch_size: PosInt = Field(512, description="Training rows per step.")

    @field_validator("transform_hidden", mode="before")
    @classmethod
    def _transform_sizes(cls, v: Any) -> Any:
        return layer_sizes(v)

    @property
    def architecture(self) -> str:
        """e.g. 'neutral 64-32 r32 k11 mul'."""
        return f"neutral {self.widths} r{self.rep_dim} k{self.transforms} {self.transform_type}"


def _count_or_fraction(v: float, expected: str, one_is_fraction: bool = False) -> int | float:
    """A whole number ≥ 1 is a count (returned as int); a value in (0, 1) is a fraction."""
    if 0 < v < 1 or (one_is_fraction and v == 1):
        return float(v)
    if v >= 1 and float(v).is_integer():
        return int(v)
    raise ValueError(f"expected {expected}")


class IForestConfig(_Strict):
    """scikit-learn's IsolationForest, a baseline: its own anomaly score, no feature scores."""

    implementation: ClassVar[str] = "kddad.models.iforest:IForest"

    name: Literal["iforest"] = Field(description="scikit-learn's IsolationForest.")
    n_estimators: PosInt = Field(100, description="Trees.")
    max_samples: float | Literal["auto"] = Field(
        "auto", description="Rows per tree: a count, a fraction ≤ 1, or auto (256)."
    )
    max_features: Annotated[float, Field(gt=0, le=1)] = Field(1.0, description="Share of features per tree.")
    n_jobs: int | None = Field(None, description="Parallel jobs; null: one.")

    @property
    def architecture(self) -> str:
        return f"iforest {self.n_estimators} trees"

    @field_validator("max_samples")
    @classmethod
    def _samples(cls, v: float | str) -> float | str:
        return (
            v
            if v == "auto"
            else _count_or_fraction(v, '"auto", a row count (1, 2, …) or a fraction in (0, 1]', one_is_fraction=True)
        )


class PCAConfig(_Strict):
    """Principal component analysis, a baseline: the linear autoencoder, scored like the others."""

    implementation: ClassVar[str] = "kddad.models.pca:PCA"

    name: Literal["pca"] = Field(description="Principal component analysis.")
    n_components: float = Field(8, description="A count of components, or a fraction < 1 of the variance to keep.")
    whiten: bool = Field(False, description="Scale the components to unit variance.")

    @property
    def architecture(self) -> str:
        return f"pca k{self.n_components}"

    @field_validator("n_components")
    @classmethod
    def _components(cls, v: float) -> float:
        return _count_or_fraction(v, "a count of components (1, 2, …) or a fraction of variance in (0, 1)")


#: The kinds a fusion can hold: every kind but the fusion itself
MEMBER_CONFIGS = (NetworkConfig, DeepSVDDConfig, NeuTraLConfig, IForestConfig, PCAConfig)
MemberConfig = Annotated[Union[MEMBER_CONFIGS], Field(discriminator="name")]  # noqa: UP007 (a tuple of classes)


class FusionConfig(_Strict):
    """Score fusion: member models of any other kind, each fitted on the same normal rows, and a
    row's score the sum of its surprise under each member, -log10 of the share of validation
    normals the member scores at least as high (beyond the ``tail`` quantile, an exponential tail
    fitted to the validation scores above it). Members whose scores live on different scales count
    alike, and a row far out under one member stays far out. Its feature scores and latent codes
    are those of its first member that has them."""

    implementation: ClassVar[str] = "kddad.models.fusion:Fusion"

    name: Literal["fusion"] = Field(description="Score fusion of member models of other kinds.")
    members: dict[str, MemberConfig] = Field(
        description="The members by label (e.g. vae, neutral), each a model config of its own kind."
    )
    tail: Annotated[float, Field(gt=0.5, lt=1)] = Field(
        0.99, description="Validation quantile above which a member's tail is fitted as exponential."
    )
    member_epochs: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="The most epochs of a member, by label, below trainer.max_epochs (which caps "
        "every member): a member that learns fast need not take the others' time.",
    )

    @field_validator("members")
    @classmethod
    def _labels(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) < 2:
            raise ValueError(f"expected at least two members, got {len(v)}")
        bad = [k for k in v if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", k)]
        if bad:
            raise ValueError(f"member labels are folder names: expected [a-z][a-z0-9_]*, got {bad}")
        return v

    @model_validator(mode="after")
    def _epochs_of_members(self) -> FusionConfig:
        if unknown := sorted(set(self.member_epochs) - set(self.members)):
            raise ValueError(f"member_epochs names {unknown}, not members; the members are {sorted(self.members)}")
        return self

    @property
    def architecture(self) -> str:
        """e.g. 'fusion vae 64-32 z8 + neutral 64-32 r32 k11 mul'."""
        return "fusion " + " + ".join(m.architecture for m in self.members.values())


#: Every model kind's config class; ``model.name`` picks one. A new kind adds its class here.
MODEL_CONFIGS = (*MEMBER_CONFIGS, FusionConfig)
ModelConfig = Annotated[Union[MODEL_CONFIGS], Field(discriminator="name")]  # noqa: UP007 (a tuple of classes)
MODEL_ADAPTER: TypeAdapter = TypeAdapter(ModelConfig)
#: The values of ``model.name``, e.g. ("ae", "vae", "deep_svdd", "iforest", "pca")
MODEL_KINDS: tuple[str, ...] = tuple(k for c in MODEL_CONFIGS for k in get_args(c.model_fields["name"].annotation))


class ScoreConfig(_Strict):
    """How a reconstruction becomes an outlier score (IsolationForest has its own).

    ``name``, ``min_var`` and ``min_var_share`` shape the trained network (a likelihood score
    trains a variance head with that floor); the keys marked scoring-only change how a trained model scores and nothing
    it learnt, so the threshold and evaluate stages apply them without retraining.
    """

    name: Literal["mse", "likelihood"] = Field(
        "likelihood",
        description="mse: squared error per feature; likelihood: Gaussian "
        "negative log-likelihood with a learned variance.",
    )
    samples: NonNegInt = Field(
        0,
        description="vae: latent samples averaged per row; 0: the posterior mean's decoding alone (one "
        "decoder pass, no draws).",
        json_schema_extra=SCORING_ONLY,
    )
    outlier_perc: Annotated[float, Field(gt=0, le=100)] = Field(
        100,
        description="mse: the instance score is the mean of the top % of feature scores.",
        json_schema_extra=SCORING_ONLY,
    )
    min_var: Annotated[float, Field(gt=0)] = Field(1e-3, description="likelihood: the decoder variance's floor.")
    min_var_share: Annotated[float, Field(ge=0)] = Field(
        0.5,
        description="likelihood: a floor per feature, this share of the feature's variance in the normal "
        "training rows (at least min_var; 0: min_var alone). No feature whose normal values barely vary "
        "can then outweigh the rest, while one constant in normal traffic keeps min_var.",
    )

    @classmethod
    def scoring_only(cls) -> tuple[str, ...]:
        """The keys a trained detector may change (``Detector.set_score``); the others need a refit."""
        return tuple(k for k, f in cls.model_fields.items() if f.json_schema_extra == SCORING_ONLY)

    def scoring_part(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.scoring_only()}


class ThresholdConfig(_Strict):
    """Where the outlier threshold is set."""

    method: Literal["percentile", "f1", "fpr"] = Field(
        "percentile",
        description="percentile: of the labelled threshold batch's scores; f1: the cut with the "
        "best F1 on the threshold batch's labels; fpr: a target false-positive rate on val normals.",
    )
    perc_outlier: Percent | None = Field(
        None,
        description="percentile: flag this % of the batch; null: the batch's "
        "own outlier share (split.threshold.perc_outlier).",
    )
    fpr: Fraction = Field(0.05, description="fpr: the share of normal validation rows flagged.")


class TrainerConfig(_Strict):
    """Lightning ``Trainer`` arguments under their Lightning names (a vetted subset), and ``cuda_graph``."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"] = Field("auto", description="Where to train.")
    devices: int | str | list[int] = Field("auto", description="Devices to train on.")
    precision: Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"] = Field(
        "32-true", description="Numeric precision of training."
    )
    max_epochs: PosInt = Field(30, description="Epochs at most (early stopping may end sooner).")
    min_epochs: NonNegInt = Field(1, description="Epochs at least.")
    deterministic: bool = Field(False, description="Deterministic algorithms only (slower).")
    gradient_clip_val: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Clip the gradient norm to this; null: no clipping."
    )
    cuda_graph: bool = Field(
        True,
        description="Capture each training step in one CUDA graph on a CUDA device at 32-true precision "
        "(much faster at small batches); no effect on CPU or under mixed precision. Not a Lightning argument.",
    )
    threads: PosInt | None = Field(
        None,
        description="torch's intra-op threads on the CPU; null: OMP_NUM_THREADS where set, else the cores this "
        "process may use that no other process is busy on when training starts (threads beyond the free cores "
        "slow every step down). Not a Lightning argument.",
    )
    log_every_n_steps: PosInt = Field(50, description="Lightning's logging interval in steps.")
    enable_progress_bar: bool = Field(True, description="A progress bar per epoch.")

    @property
    def scoring_device(self) -> str:
        """Where the threshold and evaluate stages score: the device training used (torch's name)."""
        if self.accelerator in ("gpu", "cuda"):
            one = self.devices if isinstance(self.devices, list) and len(self.devices) == 1 else None
            return f"cuda:{one[0]}" if one else "cuda"
        return {"auto": "auto", "mps": "mps"}.get(self.accelerator, "cpu")

    @model_validator(mode="after")
    def _epochs(self) -> TrainerConfig:
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"trainer.min_epochs ({self.min_epochs}) exceeds trainer.max_epochs ({self.max_epochs})")
        return self


class EarlyStoppingConfig(_Strict):
    """Early stopping on the loss of the normal-only validation split."""

    patience: NonNegInt = Field(5, description="Epochs without improvement before training stops.")
    min_delta: Annotated[float, Field(ge=0)] = Field(0.0, description="The least change that counts as improvement.")


class TrackingConfig(_Strict):
    """MLflow tracking; where runs are recorded, not what they compute (no stage depends on it)."""

    enabled: bool = Field(True, description="Record runs in MLflow.")
    uri: str = Field(
        "sqlite:///mlflow.db",
        description="The store; a relative sqlite path resolves against the "
        "project root (the folder holding dvc.yaml, or DVC_ROOT).",
    )
    experiment: str = Field("kddad", description="MLflow experiment name.")
    register_as: str | None = Field(
        None,
        description="Register the logged detector model under this name in the model registry; null: do not.",
    )


class Config(_Strict):
    """The whole composed configuration (params.yaml)."""

    dataset: DatasetConfig = Field(description="The raw data file.")
    download: DownloadConfig = Field(DownloadConfig(), description="How to fetch it.")
    split: SplitConfig = Field(SplitConfig(), description="How rows become train/val/threshold/test.")
    features: FeaturesConfig = Field(description="The columns the model sees.")
    scaling: ScalingConfig = Field(ScalingConfig(), description="How numeric columns are scaled.")
    model: ModelConfig = Field(description="The model kind (model.name) and its settings.")
    score: ScoreConfig = Field(ScoreConfig(), description="The outlier score.")
    threshold: ThresholdConfig = Field(ThresholdConfig(), description="The outlier threshold.")
    trainer: TrainerConfig = Field(TrainerConfig(), description="Lightning Trainer arguments.")
    early_stopping: EarlyStoppingConfig = Field(EarlyStoppingConfig(), description="Early stopping on val loss.")
    tracking: TrackingConfig = Field(TrackingConfig(), description="MLflow tracking.")
    seed: NonNegInt = Field(0, description="Seed of model initialisation and training (the split has its own).")

    @model_validator(mode="after")
    def _test_file_protocol(self) -> Config:
        if (self.dataset.test is None) != (self.split.protocol != "test_file"):
            raise ValueError(
                f"split.protocol={self.split.protocol} with dataset.test "
                f"{'unset' if self.dataset.test is None else 'set'}: protocol test_file and a test file "
                "go together (dataset=nslkdd selects both; with another split, set dataset.test=null)"
            )
        return self

    @model_validator(mode="after")
    def _f1_threshold_off_the_test_labels(self) -> Config:
        if self.threshold.method == "f1" and self.split.protocol == "dagmm":
            raise ValueError(
                "threshold.method=f1 with split.protocol=dagmm: that protocol's threshold batch is the test "
                "set, so the cut would be set by the test labels; use threshold=percentile (the papers' "
                "anomaly share) or threshold=fpr"
            )
        return self

    @model_validator(mode="after")
    def _log1p_on_features(self) -> Config:
        log1p = self.scaling.log1p
        if isinstance(log1p, list):
            outside = [c for c in log1p if c not in self.features.numeric]
            if outside:
                raise ValueError(
                    f"scaling.log1p: {outside} are not numeric features of features={self.features.name}; "
                    "list columns the model sees"
                )
        return self

    @model_validator(mode="after")
    def _no_leak_through_features(self) -> Config:
        outside = [c for c in self.split.group_columns if c not in self.features.columns]
        if outside:
            raise ValueError(
                f"split.group_by: {outside} are not among the features ({self.features.name}); rows identical "
                "on the features could then fall in train and test. Group by a subset of the features"
            )
        return self
