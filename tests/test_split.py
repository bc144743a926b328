import numpy as np
import pytest
import yaml
from helpers.repo import ROOT

from kddad.config import SplitConfig
from kddad.data import fields
from kddad.data.read import read_kdd
from kddad.data.split import identical_rows, row_keys, split
from kddad.errors import ConfigError


@pytest.fixture(scope="module")
def default_split(kdd):
    return split(kdd, SplitConfig())


@pytest.mark.parametrize("columns", ["alibi18", "all41"])
def test_no_row_of_another_split_repeats_a_training_row(default_split, columns):
    frames, _ = default_split
    cols = {"alibi18": fields.ALIBI18, "all41": fields.FEATURES}[columns]
    assert identical_rows(frames, cols) == {"val": 0, "threshold": 0, "test": 0, "attacks": 0, "threshold_attacks": 0}


def test_default_split_never_leaks(default_split):
    frames, report = default_split
    assert identical_rows(
        {"threshold": frames["threshold"], "test": frames["test"]}, fields.ALIBI18, of="threshold"
    ) == {"test": 0}
    assert set(report["identical_to_train"]["on_group_by"].values()) == {0}
    assert identical_rows(
        {"threshold": frames["threshold"], "attacks": frames["attacks"]}, fields.ALIBI18, of="threshold"
    ) == {"attacks": 0}
    # the held-out attacks are the test pool's: the test set's attacks are among them
    assert frames["attacks"]["is_outlier"].all()
    assert set(frames["test"].loc[frames["test"]["is_outlier"] == 1, "row"]) <= set(frames["attacks"]["row"])
    assert report["test_normals_identical_to_train_frac"] == 0


def test_default_split_sizes_and_outlier_fractions(default_split):
    frames, report = default_split
    assert frames["train"]["is_outlier"].sum() == 0 and frames["val"]["is_outlier"].sum() == 0
    assert len(frames["threshold"]) == 10000 and frames["threshold"]["is_outlier"].sum() == 500
    assert len(frames["test"]) == 20000 and frames["test"]["is_outlier"].sum() == 2000
    assert len(frames["train"]) > 30000 and len(frames["val"]) > 3000
    assert report["rows"] == {k: len(v) for k, v in frames.items()}
    # drawn without replacement: no source row twice
    for f in frames.values():
        assert f["row"].is_unique
    rows = np.concatenate([f["row"].to_numpy() for name, f in frames.items() if "attacks" not in name])
    assert len(np.unique(rows)) == len(rows)


def test_identical_rows_always_share_a_split(kdd, default_split):
    frames, _ = default_split
    where = {}
    for name, f in frames.items():
        if "attacks" in name:  # supersets of the test set's and threshold batch's attacks, by design
            continue
        for key in row_keys(f, fields.ALIBI18):
            assert where.setdefault(key, name) == name


def test_split_is_reproducible_and_seeded(kdd, default_split):
    again, _ = split(kdd, SplitConfig())
    other, _ = split(kdd, SplitConfig(seed=1))
    assert again["test"]["row"].equals(default_split[0]["test"]["row"])
    assert not other["test"]["row"].equals(default_split[0]["test"]["row"])


def test_configured_outlier_percentages(kdd):
    cfg = SplitConfig(threshold={"n": 4000, "perc_outlier": 1}, test={"n": 5000, "perc_outlier": 20})
    frames, _ = split(kdd, cfg)
    assert frames["threshold"]["is_outlier"].mean() == pytest.approx(0.01)
    assert frames["test"]["is_outlier"].mean() == pytest.approx(0.20)


def test_dedupe_drops_repeats(kdd):
    frames, report = split(kdd, SplitConfig(dedupe=True))
    assert report["duplicates_dropped"] == 494021 - 145586
    for f in frames.values():
        assert not f.duplicated(subset=[*fields.FEATURES, "label"]).any()


def test_impossible_batch_size_names_the_key(kdd):
    with pytest.raises(ConfigError, match=r"split.test.n=300000: needs 270000 normal rows, but only \d+"):
        split(kdd, SplitConfig(test={"n": 300000, "perc_outlier": 10}))


def test_alibi_example_preset_reproduces_the_leaky_protocol(kdd):
    preset = SplitConfig(**yaml.safe_load((ROOT / "conf/split/alibi_example.yaml").read_text()))
    frames, report = split(kdd, preset)
    attacks = 494021 - 97278
    assert report["rows"] == {
        "train": 400000,
        "val": 40000,
        "threshold": 1000,
        "test": 1000,
        "attacks": attacks,
        "threshold_attacks": attacks,
    }
    assert report["outliers"]["threshold"] == 50 and report["outliers"]["test"] == 100
    assert frames["train"]["row"].duplicated().any()  # 400,000 from 97,278: with replacement
    assert not frames["test"]["row"].duplicated().any()  # a 1,000-row batch: without
    assert report["test_normals_identical_to_train_frac"] > 0.95
    assert report["identical_to_train"]["on_group_by"]["test"] > 850


def _preset(name: str) -> SplitConfig:
    raw = yaml.safe_load((ROOT / "conf" / "split" / f"{name}.yaml").read_text())
    raw["seed"] = 7  # the presets follow the top-level seed (${seed})
    return SplitConfig.model_validate(raw)


def test_dagmm_protocol_flips_the_classes_and_halves_the_rows(kdd):
    frames, report = split(kdd, _preset("dagmm"))
    test, train, val = frames["test"], frames["train"], frames["val"]
    # normal traffic is the anomaly class; attack rows are the inliers that train
    assert (test["is_outlier"] == (test["label"] == "normal")).all()
    assert (train["label"] != "normal").all() and (val["label"] != "normal").all()
    assert train["is_outlier"].sum() == 0
    # two disjoint halves of every row; the training half's inliers all train (less val)
    assert len(test) == len(kdd) - round(len(kdd) / 2)
    assert not set(test["row"]) & set(train["row"]) and not set(val["row"]) & set(train["row"])
    assert not set(test["row"]) & set(val["row"])
    train_half_inliers = (kdd["label"] != "normal").sum() - (test["label"] != "normal").sum()
    assert len(train) + len(val) == train_half_inliers and len(val) == round(0.1 * train_half_inliers)
    # the threshold batch is the test set (the papers' top-20%-of-test-scores rule)
    assert frames["threshold"]["row"].tolist() == test["row"].tolist() and report["threshold_is_test"]
    assert 0.18 < test["is_outlier"].mean() < 0.22
    assert set(frames["attacks"]["row"]) == set(test.loc[test["is_outlier"] == 1, "row"])
    # rows are split one by one: the report owns up to duplicates across the halves
    assert report["test_normals_identical_to_train_frac"] > 0.5


def test_kddrev_protocol_draws_attacks_at_one_in_five(kdd):
    frames, report = split(kdd, _preset("kddrev"))
    n_normal = int((kdd["label"] == "normal").sum())
    assert report["anomaly_rows_used"] == n_normal // 4 == 24319
    test, train = frames["test"], frames["train"]
    assert (test["is_outlier"] == (test["label"] != "normal")).all() and (train["label"] == "normal").all()
    assert len(test) == (n_normal + 24319) - round((n_normal + 24319) / 2)
    assert 0.18 < test["is_outlier"].mean() < 0.22
    # another seed: other attack rows, other halves
    other, _ = split(kdd, _preset("kddrev").model_copy(update={"seed": 8}))
    assert set(other["test"]["row"]) != set(test["row"])


@pytest.mark.parametrize(
    "change, key",
    [
        ({"test": {"n": 1000}}, "split.test.n"),
        ({"threshold": {"n": None, "perc_outlier": 0}}, "split.threshold.perc_outlier"),
        ({"protocol": "grouped"}, "split.inlier"),
        ({"pools": {"threshold": 0.5, "test": 0.4}}, "split.pools"),
        ({"test": {"n": None, "seed": 3}}, "split.test.seed"),
    ],
)
def test_dagmm_settings_that_cannot_apply_are_refused(change, key):
    raw = yaml.safe_load((ROOT / "conf" / "split" / "dagmm.yaml").read_text())
    raw["seed"] = 0
    raw.update(change)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SplitConfig.model_validate(raw)


def test_goad_variant_tests_every_anomaly_beside_the_other_half_of_the_inliers(kdd):
    frames, _ = split(kdd, _preset("dagmm").model_copy(update={"test_anomalies": "all"}))
    test, train, val = frames["test"], frames["train"], frames["val"]
    n_normal = int((kdd["label"] == "normal").sum())
    assert test["is_outlier"].sum() == n_normal  # every normal-traffic row is a test anomaly
    n_attack = len(kdd) - n_normal
    assert len(train) + len(val) == round(n_attack / 2) and len(test) == n_normal + n_attack - round(n_attack / 2)
    assert 0.32 < test["is_outlier"].mean() < 0.34  # the share GOAD's code thresholds at


def test_a_setting_the_protocol_ignores_is_refused_by_name():
    with pytest.raises(ValueError, match=r"split\.train_frac: used by protocol dagmm only"):
        SplitConfig(train_frac=0.9)


def test_an_anomaly_share_too_small_to_draw_one_row_is_refused(kdd):
    cfg = _preset("kddrev").model_copy(update={"outlier_frac": 1e-6})
    with pytest.raises(ConfigError, match=r"split\.inlier=normal: 97278 inlier and 0 anomaly rows"):
        split(kdd, cfg)


def test_threshold_attacks_are_every_attack_of_the_threshold_pool_and_no_test_row(default_split):
    frames, _ = default_split
    pool = frames["threshold_attacks"]
    assert pool["is_outlier"].all() and len(pool) > 1000
    in_batch = frames["threshold"].loc[frames["threshold"]["is_outlier"] == 1, "row"]
    assert set(in_batch) <= set(pool["row"])
    assert not set(pool["row"]) & set(frames["attacks"]["row"])
    assert identical_rows({"pool": pool, "test": frames["test"]}, fields.ALIBI18, of="pool") == {"test": 0}
    assert {"r2l", "u2r"} <= set(pool["category"])  # rare categories to choose on, outside the test split


def test_test_file_protocol_tests_on_the_whole_file_and_splits_the_main_one(mirror):
    """NSL-KDD's protocol: KDDTrain+ gives train/val (normal rows) and the threshold batch; KDDTest+ is the test."""
    train_file, test_file = read_kdd(mirror / "KDDTrain+_20Percent.txt"), read_kdd(mirror / "KDDTest+.txt")
    cfg = SplitConfig(**yaml.safe_load((ROOT / "conf/split/test_file.yaml").read_text()))
    frames, report = split(train_file, cfg, test_file)
    assert len(frames["test"]) == 22544 and frames["test"]["row"].tolist() == list(range(22544))
    assert frames["test"]["difficulty"].tolist() == test_file["difficulty"].tolist()
    assert len(frames["attacks"]) == int(test_file["is_outlier"].sum())
    for name in ("train", "val", "threshold", "threshold_attacks"):  # all from the training file
        assert set(frames[name]["row"]) <= set(range(25192))
    assert frames["train"]["is_outlier"].sum() == 0 and frames["val"]["is_outlier"].sum() == 0
    assert len(frames["threshold"]) == 2000 and frames["threshold"]["is_outlier"].sum() == 100
    used = set(frames["train"]["row"]) | set(frames["val"]["row"])
    assert not used & set(frames["threshold"]["row"]) and not used & set(frames["threshold_attacks"]["row"])
    # every normal row of the training file trains, validates or waits in the threshold pool
    pool_normals = report["pools"]["threshold"]["rows"] - len(frames["threshold_attacks"])
    assert len(used) + pool_normals == int((train_file["is_outlier"] == 0).sum())
    assert report["pools"]["test"]["rows"] == 0
    with pytest.raises(ConfigError, match="test_file"):
        split(train_file, cfg)  # no test file
    with pytest.raises(ConfigError, match="test_file"):
        split(train_file, SplitConfig(), test_file)  # a test file the protocol would ignore
