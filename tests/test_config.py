import subprocess
import sys

import pytest
import yaml
from helpers.repo import ROOT
from pydantic import BaseModel

from kddad import config
from kddad.data import fields
from kddad.errors import ConfigError


def test_params_yaml_is_the_default_composition_of_conf():
    committed = (ROOT / "params.yaml").read_text(encoding="utf-8")
    assert config.compose_yaml(ROOT / "conf") == committed, "params.yaml is stale: run `make params`"


def test_every_option_of_every_group_composes_and_validates():
    groups = [p for p in (ROOT / "conf").iterdir() if p.is_dir()]
    assert {g.name for g in groups} >= {
        "dataset",
        "features",
        "scaling",
        "split",
        "model",
        "score",
        "threshold",
        "trainer",
        "tracking",
    }
    for group in groups:
        for option in group.glob("*.yaml"):
            extra = ["dataset.path=/some/file.txt"] if option.stem == "local" else []
            if (group.name, option.stem) == ("split", "test_file"):  # needs a test file: dataset=nslkdd
                extra = ["dataset=nslkdd"]
            text = config.compose_yaml(ROOT / "conf", [f"{group.name}={option.stem}", *extra])
            cfg = config.validate(yaml.safe_load(text))
            if group.name == "hparams_search":  # the VAE alone and Hydra's sweeper; no other param DVC reads
                assert text == config.compose_yaml(ROOT / "conf", ["model=vae"])
            elif group.name == "debug":  # a global preset: quick training
                assert (cfg.trainer.max_epochs, cfg.trainer.enable_progress_bar) == (2, False)
            elif group.name != "experiment":
                assert getattr(cfg, group.name) is not None


def test_experiment_presets_set_the_reference_protocols():
    alibi = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", ["experiment=alibi_vae_kddcup"])))
    assert alibi.split.protocol == "alibi_example" and alibi.split.train.n == 400000
    assert (alibi.features.name, alibi.scaling.method, alibi.score.name) == ("alibi18", "standard", "mse")
    assert (alibi.model.hidden, alibi.model.latent, alibi.model.batch_size) == ([20, 15, 7], 2, 64)
    tut = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", ["experiment=tutorial_ae"])))
    assert (tut.features.name, tut.scaling.method, tut.model.output_activation) == ("all41", "minmax", "sigmoid")
    assert (tut.model.hidden, tut.model.latent, tut.threshold.method) == ([64, 32], 4, "fpr")


def test_nslkdd_preset_is_the_official_protocol_with_the_pool_chosen_detector():
    """NSL-KDD's test_file protocol, variance_floor's settings beside NeuTraL AD, a threshold on val normals."""
    cfg = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", ["experiment=nslkdd"])))
    floor = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", ["experiment=variance_floor"])))
    neutral = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", ["model=neutral"])))
    assert (cfg.dataset.name, cfg.split.protocol) == ("nslkdd20", "test_file")  # the file it was chosen on
    assert (cfg.scaling, cfg.score) == (floor.scaling, floor.score)
    assert cfg.model.members == {"vae": floor.model, "neutral": neutral.model}
    assert (cfg.threshold.method, cfg.threshold.fpr) == ("fpr", 0.05)


@pytest.mark.parametrize(
    "preset, inlier, share, epochs",
    [("neutral_kddcup", "attack", 32.9, 10), ("neutral_kddrev", "normal", 33.33, 30)],
)
def test_literature_presets_run_goads_test_set_with_neutral_ad(preset, inlier, share, epochs):
    """GOAD's test set (every anomaly row, the threshold at their share) and the authors' settings."""
    cfg = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", [f"experiment={preset}"])))
    assert (cfg.split.protocol, cfg.split.inlier, cfg.split.test_anomalies) == ("dagmm", inlier, "all")
    assert cfg.split.threshold.perc_outlier == share and cfg.trainer.max_epochs == epochs
    assert (cfg.model.name, cfg.model.hidden, cfg.model.transform_hidden) == ("neutral", [64] * 4, [100])
    assert (cfg.model.lr, cfg.model.batch_size, cfg.model.transforms) == (0.0005, 1000, 11)


def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("split.test.perc_outlier", 100, "split.test.perc_outlier"),
        ("split.threshold.perc_outlier", -1, "split.threshold.perc_outlier"),
        ("split.test.n", -5, "split.test.n"),
        ("split.val_frac", 1.5, "split.val_frac"),
        ("split.train.perc_outlier", 10, "normal rows only"),
        ("split.pools.test", 0.9, "leave room for train"),
        ("split.group_by", "alibi19", "unknown feature set"),
        ("dataset.sha256", "abc", "64 hexadecimal"),
        ("features.numeric", ["srv_count", "nonsense"], "nonsense"),
        ("features.categorical", ["srv_count"], "not categorical"),
        ("scaling.method", "quantile", "scaling.method"),
        ("model.latent", 0, "model.latent"),
        ("trainer.max_epochs", 0, "trainer.max_epochs"),
        ("split.tset", {"n": 5}, "split.tset: unknown key"),
        ("trainer.max_epoch", 3, "trainer.max_epoch: unknown key"),
        ("trainer.precision", "bogus", "trainer.precision"),
        ("trainer.accelerator", "tpuu", "trainer.accelerator"),
        ("trainer.min_epochs", 50, "exceeds trainer.max_epochs"),
        ("split.group_by", [], "at least one column"),
        ("scaling.log1p", "src_bytes", "unknown log1p set"),
        ("scaling.log1p", ["src_bytes", "label"], "not numeric KDD columns"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(key, value, expected):
    raw = _default()
    node = raw
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    with pytest.raises(ConfigError) as err:
        config.validate(raw, source="params.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("params.yaml: invalid configuration")


def test_grouping_on_columns_outside_the_features_is_refused():
    raw = _default()
    raw["features"] = {"name": "few", "numeric": ["srv_count", "serror_rate"], "categorical": []}
    with pytest.raises(ConfigError, match="split.group_by.*not among the features"):
        config.validate(raw)
    raw["split"]["group_by"] = ["srv_count", "serror_rate"]
    assert config.validate(raw).split.group_columns == ("srv_count", "serror_rate")


def test_default_config_is_valid_and_typed(cfg):
    assert cfg.split.protocol == "grouped"
    assert cfg.features.name == "all41" and len(cfg.features.columns) == 41
    assert cfg.score.name == "likelihood" and cfg.model.name == "fusion"
    assert {k: m.name for k, m in cfg.model.members.items()} == {"vae": "vae", "neutral": "neutral"}
    assert len(cfg.split.group_columns) == 18  # grouped on the alibi18 columns whatever the features


def test_stage_driver_stops_on_a_bad_config_before_any_work(tmp_path):
    raw = _default()
    raw["split"]["test"]["perc_outlier"] = 120
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "download.py"), "--params", str(params)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "split.test.perc_outlier" in proc.stderr and "less than 100" in proc.stderr
    assert not (tmp_path / "data").exists()


def test_missing_params_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="make params"):
        config.load(tmp_path / "params.yaml")


def test_slurm_launcher_config_composes():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == 1 and launcher.timeout_min == 60


@pytest.mark.parametrize(
    "accelerator, devices, expected",
    [
        ("auto", "auto", "auto"),
        ("cpu", "auto", "cpu"),
        ("gpu", "auto", "cuda"),
        ("cuda", [1], "cuda:1"),
        ("mps", "auto", "mps"),
        ("tpu", "auto", "cpu"),
    ],
)
def test_threshold_and_evaluate_score_on_the_device_training_used(accelerator, devices, expected):
    assert config.TrainerConfig(accelerator=accelerator, devices=devices).scoring_device == expected


def test_nslkdd_selects_its_protocol_and_the_two_go_together():
    cfg = config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", ["dataset=nslkdd"])))
    assert cfg.split.protocol == "test_file" and cfg.dataset.test.raw_name == "KDDTest+.txt"
    # KDDTest+ is mostly attacks: the threshold comes from the normal validation rows, not the batch
    assert (cfg.threshold.method, cfg.threshold.fpr) == ("fpr", 0.05)
    told = yaml.safe_load(config.compose_yaml(ROOT / "conf", ["dataset=nslkdd", "threshold=percentile"]))
    told = config.validate(told)
    assert told.threshold.method == "percentile"
    raw = _default()
    raw["split"] = cfg.split.model_dump()  # protocol test_file, without a test file
    with pytest.raises(ConfigError, match="protocol test_file and a test file go together"):
        config.validate(raw)
    raw = cfg.model_dump()
    raw["split"]["protocol"] = "grouped"
    with pytest.raises(ConfigError, match="split.pools.test: protocol grouped"):
        config.validate(raw)
    raw["split"]["pools"]["test"] = 0.3
    with pytest.raises(ConfigError, match="go together"):
        config.validate(raw)
    raw = cfg.model_dump()
    raw["split"]["test"]["n"] = 500
    with pytest.raises(ConfigError, match="split.test: protocol test_file tests on all of dataset.test"):
        config.validate(raw)
    raw = cfg.model_dump()
    raw["dataset"]["test"]["filename"] = raw["dataset"]["filename"]
    with pytest.raises(ConfigError, match="dataset.test: names the main file again"):
        config.validate(raw)


def test_log1p_columns_must_be_features_the_model_sees():
    raw = _default()
    raw["features"] = {"name": "few", "numeric": list(fields.ALIBI18), "categorical": []}
    raw["scaling"]["log1p"] = ["srv_count", "src_bytes"]
    with pytest.raises(ConfigError, match=r"scaling.log1p: \['src_bytes'\] are not numeric features"):
        config.validate(raw)
    raw["scaling"]["log1p"] = ["srv_count"]
    assert config.validate(raw).scaling.log1p == ["srv_count"]


# -- one source of every default ----------------------------------------------------------------

#: Groups that name the data (required, no schema default): what a default would mean there is another file
DATA_GROUPS = ("dataset", "features")


def _disagreements(schema_cls, composed: dict, prefix: str, defaults: BaseModel | None = None) -> list[str]:
    """Keys whose schema default differs from what conf/ composes, nested groups key by key
    (``defaults``: the instance a parent group gives as its default, e.g. split.threshold's n)."""
    out = []
    for name, field in schema_cls.model_fields.items():
        if name not in composed:
            continue  # conf/ leaves it to the schema: one source
        if defaults is not None:
            default = getattr(defaults, name)
        elif field.is_required():
            default = None
        else:
            default = field.get_default(call_default_factory=True)
        tp, value = field.annotation, composed[name]
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(value, dict):
            out += _disagreements(tp, value, f"{prefix}{name}.", default if isinstance(default, BaseModel) else None)
        elif (defaults is not None or not field.is_required()) and default != value:
            out.append(f"{prefix}{name}: schema {default!r}, conf/ {value!r}")
    return out


def test_the_schema_defaults_are_the_default_composition_of_conf():
    composed = yaml.safe_load(config.compose_yaml(ROOT / "conf"))
    model_cls = type(config.MODEL_ADAPTER.validate_python(composed["model"]))  # the default kind's class
    # a fusion's member_epochs are keyed by its preset's member labels, which no schema default can name
    own = {k: v for k, v in composed["model"].items() if k != "member_epochs"}
    bad = _disagreements(model_cls, own, "model.")
    for group, field in config.Config.model_fields.items():
        if group in (*DATA_GROUPS, "model"):
            continue
        tp = field.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            bad += _disagreements(tp, composed[group], f"{group}.", default)
        elif field.get_default() != composed[group]:
            bad.append(f"{group}: schema {field.get_default()!r}, conf/ {composed[group]!r}")
    assert not bad, "defaults disagree: " + "; ".join(bad)


def test_a_library_detector_is_the_pipelines_by_default(cfg):
    """Only the architecture given: the detector `dvc repro` trains (lr, batch, score, trainer, stopping, seed)."""
    from kddad.detector import Detector

    vae, neutral = cfg.model.members["vae"], cfg.model.members["neutral"]
    network = ("transforms", "hidden", "transform_hidden", "rep_dim", "lr", "batch_size")  # not NeuTraL AD's defaults
    members = {
        "vae": {"name": "vae", "hidden": vae.hidden, "latent": vae.latent, "lr": vae.lr, "batch_size": vae.batch_size},
        "neutral": {"name": "neutral", **{k: getattr(neutral, k) for k in network}},
    }
    det = Detector(model={"name": "fusion", "members": members, "member_epochs": cfg.model.member_epochs})
    assert det.model == cfg.model and det.score_cfg == cfg.score
    assert (det.trainer, det.early_stopping, det.seed) == (cfg.trainer, cfg.early_stopping, cfg.seed)


def test_dvc_params_follow_the_score_split():
    """Train depends on the score keys that shape the network, threshold on all, evaluate on the
    scoring-only ones (ScoreConfig declares which): changing `samples` never retrains."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keys, scoring = set(config.ScoreConfig.model_fields), set(config.ScoreConfig.scoring_only())
    assert scoring == {"samples", "outlier_perc"}

    def score_keys(stage: str) -> set[str]:
        params = stages[stage]["params"]
        return keys if "score" in params else {p.split(".", 1)[1] for p in params if p.startswith("score.")}

    assert score_keys("train") == keys - scoring
    assert score_keys("threshold") == keys
    assert score_keys("evaluate") == scoring


def test_an_f1_threshold_on_a_protocol_whose_threshold_batch_is_the_test_set_is_refused():
    def composed(*overrides: str):
        return config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", list(overrides))))

    assert composed("threshold=f1").threshold.method == "f1"
    with pytest.raises(ConfigError, match="threshold.method=f1 with split.protocol=dagmm: .*test labels"):
        composed("split=dagmm", "threshold=f1")
    assert composed("split=dagmm", "threshold=fpr").threshold.method == "fpr"


def test_the_default_is_the_floored_vae_beside_lean_neutral_ad(cfg):
    """The pool-chosen default: both members at their options, the log1p scaling, the variance floor
    and the posterior mean's likelihood; the previous default kept as experiment=fusion_kdd."""

    def composed(*overrides: str):
        return config.validate(yaml.safe_load(config.compose_yaml(ROOT / "conf", list(overrides))))

    default = composed()
    vae = composed("model=vae").model
    assert default.model.members == {
        "vae": vae.model_copy(update={"batch_size": 1024, "lr": 0.003}),  # the VAE preset on larger batches
        "neutral": composed("model=neutral_lean").model,
    }
    assert default.score.samples == 0 and default.model.member_epochs == {"vae": 20, "neutral": 25}
    before = composed("experiment=fusion_kdd")
    assert before.model.members == {"vae": vae, "neutral": composed("model=neutral_kdd").model}
    assert before.score.samples == 10
    assert composed("experiment=variance_floor").model == vae
    assert (default.scaling.log1p, default.score.min_var_share, default.threshold.method) == (
        "sizes_and_content",
        0.5,
        "percentile",
    )
    # the published-table presets keep the scaling they were measured with
    for preset in ("neutral_kddcup", "neutral_kddrev", "alibi_vae_kddcup"):
        assert composed(f"experiment={preset}").scaling.log1p is False
