"""A model kind whose loss is no reconstruction, through the shared loop: Deep SVDD on real rows.

Driven as a user drives any kind, through ``Detector(model={"name": "deep_svdd", ...})``; the
graphed step with FakeGraph is checked beside the VAE's in tests/test_training.py.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score

from kddad.config import MODEL_ADAPTER
from kddad.config.schema import DeepSVDDConfig, EarlyStoppingConfig, ScoreConfig, TrainerConfig
from kddad.data import fields
from kddad.detector import Detector, DetectorError
from kddad.features.encoder import FeatureEncoder
from kddad.models.base import model_class
from kddad.models.deep_svdd import CENTER_EPS, DeepSVDD
from kddad.models.neural import WEIGHTS

SVDD = {"name": "deep_svdd", "hidden": [32, 16], "rep_dim": 8}
QUICK = {"max_epochs": 3, "enable_progress_bar": False, "accelerator": "cpu"}
PRESET = Path(__file__).resolve().parents[1] / "conf" / "model" / "deep_svdd.yaml"


@pytest.fixture(scope="module")
def data(kdd):
    """Encoded real rows: 3,000 normals to train on, 1,000 to validate, a batch with 300 attacks."""
    normal = kdd[kdd["label"] == "normal"].sample(5500, random_state=0)
    attacks = kdd[kdd["label"] != "normal"].sample(300, random_state=0)
    enc = FeatureEncoder(fields.NUMERIC, categorical=fields.CATEGORICAL, scaling="standard").fit(normal.iloc[:3000])
    batch = np.concatenate([enc.transform(normal.iloc[4000:]), enc.transform(attacks)])
    y = np.r_[np.zeros(1500), np.ones(300)]
    return enc.transform(normal.iloc[:3000]), enc.transform(normal.iloc[3000:4000]), batch, y


def _fit(X: np.ndarray, X_val: np.ndarray, model: dict = SVDD, **trainer) -> Detector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(model, trainer={**QUICK, **trainer}, seed=0).fit(X, X_val)


@pytest.fixture(scope="module")
def fitted(data) -> Detector:
    X, X_val, *_ = data
    return _fit(X, X_val)


def test_deep_svdd_trains_through_the_shared_loop(data, fitted):
    _, X_val, batch, _ = data
    det, history = fitted, fitted.history
    assert isinstance(det.model_, DeepSVDD) and not det.has_feature_scores and det.has_latent
    assert len(history) == 3 and all(math.isfinite(h["train_loss"]) for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    # the score is the squared distance of the embedding to the centre; no feature scores
    inst, feat = det.score(batch)
    center = det.model_.network.center.numpy()
    assert feat.shape == (len(batch), 0) and det.latent(batch).shape == (len(batch), SVDD["rep_dim"])
    np.testing.assert_allclose(inst, ((det.latent(batch) - center) ** 2).sum(1), rtol=1e-5)
    # the validation loss is the same objective on X_val (the best epoch's weights are kept)
    best = min(h["val_loss"] for h in history)
    assert float(det.score(X_val)[0].mean()) == pytest.approx(best, rel=1e-5)


def test_deep_svdd_separates_attacks_from_normal_rows(data, fitted):
    *_, batch, y = data
    assert roc_auc_score(y, fitted.score(batch)[0]) > 0.95


def test_the_centre_is_the_mean_initial_embedding_moved_off_zero(data):
    X, *_ = data
    cfg = DeepSVDDConfig(**SVDD)
    model = model_class(cfg)(cfg, ScoreConfig(), TrainerConfig(), EarlyStoppingConfig())
    torch.manual_seed(0)
    model.network = model.build(X.shape[1])
    assert not any(layer.bias is not None for layer in model.network.modules() if isinstance(layer, torch.nn.Linear))
    model.prepare(torch.from_numpy(X))
    with torch.no_grad():
        mean = model.network.encode(torch.from_numpy(X)).mean(0)
    c = model.network.center
    far = mean.abs() >= CENTER_EPS
    torch.testing.assert_close(c[far], mean[far])
    assert torch.equal(c[~far], torch.where(mean[~far] < 0, -CENTER_EPS, CENTER_EPS))


def test_deep_svdd_saves_and_loads_to_identical_scores(tmp_path, data, fitted):
    *_, batch, _ = data
    fitted.infer_threshold(batch, perc_outlier=10)
    loaded = Detector.load(fitted.save(tmp_path / "det"))
    assert torch.equal(loaded.model_.network.center, fitted.model_.network.center)
    np.testing.assert_array_equal(loaded.score(batch)[0], fitted.score(batch)[0])
    np.testing.assert_array_equal(loaded.predict(batch).is_outlier, fitted.predict(batch).is_outlier)
    with pytest.raises(DetectorError, match="no per-feature scores"):
        loaded.explain(batch)
    # the centre is part of the weights: one of another size does not fit
    state = torch.load(tmp_path / "det" / WEIGHTS, weights_only=True)
    torch.save({**state, "center": torch.zeros(3)}, tmp_path / "det" / WEIGHTS)
    with pytest.raises(DetectorError, match="does not fit the network"):
        Detector.load(tmp_path / "det")


def test_the_preset_is_the_schema_default():
    preset = MODEL_ADAPTER.validate_python(yaml.safe_load(PRESET.read_text()))
    assert preset == DeepSVDDConfig(name="deep_svdd")
    assert preset.architecture == "deep_svdd 64-32 r16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_deep_svdd_trains_graphed_on_cuda(data, caplog):
    X, X_val, batch, y = data
    with caplog.at_level(logging.INFO, logger="kddad.models.graphed"):
        graphed = _fit(X, X_val, accelerator="cuda", devices=1, cuda_graph=True)
    assert "training step captured in one CUDA graph" in caplog.text
    eager = _fit(X, X_val, accelerator="cuda", devices=1, cuda_graph=False)
    for key in ("train_loss", "val_loss"):  # fused vs plain Adam: float rounding apart
        assert [h[key] for h in graphed.history] == pytest.approx([h[key] for h in eager.history], rel=1e-3)
    inst = graphed.to("cuda").score(batch)[0]
    assert roc_auc_score(y, inst) > 0.95
    np.testing.assert_allclose(graphed.to("cpu").score(batch)[0], inst, rtol=1e-4, atol=1e-6)


# -- NeuTraL AD: learnable transformations and a contrastive loss ------------------------------
NEUTRAL = {"name": "neutral", "transforms": 5, "transform_hidden": [32], "hidden": [32], "rep_dim": 16, "lr": 0.005}
NEUTRAL_PRESET = PRESET.with_name("neutral.yaml")


def _naive_dcl(net, x: torch.Tensor) -> torch.Tensor:
    """DCL row by row and view by view, as the paper writes it."""
    views = [x, *(net.transformations(x))]
    z = [torch.nn.functional.normalize(net.encoder(v), dim=-1) for v in views]
    h = lambda a, b: torch.exp((a * b).sum(-1) / net.temperature)  # noqa: E731
    k = len(views) - 1
    total = torch.zeros(len(x))
    for i in range(1, k + 1):
        others = sum(h(z[i], z[j]) for j in range(1, k + 1) if j != i)
        total += -torch.log(h(z[i], z[0]) / (h(z[i], z[0]) + others))
    return total / math.log(k)


@pytest.fixture(scope="module")
def neutral(data) -> Detector:
    X, X_val, *_ = data
    return _fit(X, X_val, NEUTRAL, max_epochs=12)


@pytest.mark.parametrize("kind", ["mul", "residual"])
def test_neutral_score_is_the_contrastive_loss_of_each_row(data, kind):
    from kddad.config import NeuTraLConfig
    from kddad.models.neutral import NeuTraLNetwork

    X, *_ = data
    torch.manual_seed(0)
    net = NeuTraLNetwork(X.shape[1], NeuTraLConfig(**{**NEUTRAL, "transform_type": kind}))
    assert not any(layer.bias is not None for layer in net.modules() if isinstance(layer, torch.nn.Linear))
    x = torch.from_numpy(X[:64])
    with torch.no_grad():
        torch.testing.assert_close(net(x), _naive_dcl(net, x), rtol=1e-4, atol=1e-5)
        views = net.transformations(x)
    assert views.shape == (NEUTRAL["transforms"], 64, X.shape[1])
    assert not torch.allclose(views[0], views[1])  # each transformation its own weights


def test_neutral_trains_through_the_shared_loop_and_separates_attacks(data, neutral):
    *_, batch, y = data
    history = neutral.history
    assert not neutral.has_feature_scores and neutral.latent(batch).shape == (len(batch), NEUTRAL["rep_dim"])
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert roc_auc_score(y, neutral.score(batch)[0]) > 0.95


def test_neutral_saves_and_loads_to_identical_scores(tmp_path, data, neutral):
    *_, batch, _ = data
    loaded = Detector.load(neutral.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.score(batch)[0], neutral.score(batch)[0])


def test_the_neutral_preset_is_the_schema_default():
    from kddad.config import NeuTraLConfig

    preset = MODEL_ADAPTER.validate_python(yaml.safe_load(NEUTRAL_PRESET.read_text()))
    assert preset == NeuTraLConfig(name="neutral")
    assert preset.architecture == "neutral 64-32 r32 k11 mul"


# -- fusion: members of other kinds, their scores summed as tail surprises ---------------------
FUSION = {"name": "fusion", "members": {"vae": {"name": "vae", "hidden": [32, 16], "latent": 4}, "neutral": NEUTRAL}}


def test_a_surprise_counts_the_validation_rows_at_least_as_high_then_follows_the_fitted_tail():
    from kddad.models.fusion import Calibration

    ref = np.arange(1.0, 1001.0)  # validation scores 1 … 1000
    cal = Calibration.fit(ref[::-1], tail=0.99)
    assert cal.reference == sorted(cal.reference) and cal.tail_start == pytest.approx(990.01)
    # below the tail: -log10((rows scoring at least as high + 1) / (rows + 1))
    np.testing.assert_allclose(cal.surprise(np.array([0.0, 1.0, 500.0])), -np.log10(np.array([1001, 1001, 502]) / 1001))
    # beyond it: the exponential tail of the validation excesses over the 99% quantile (mean 5.0)
    far = cal.surprise(np.array([2000.0, 3000.0]))
    assert far[1] - far[0] == pytest.approx(1000 / (cal.tail_scale * np.log(10)))
    grid = np.linspace(-10, 5000, 20_001)
    assert (np.diff(cal.surprise(grid)) >= 0).all(), "a higher member score is never less surprising"


@pytest.fixture(scope="module")
def fusion(data) -> Detector:
    X, X_val, *_ = data
    return _fit(X, X_val, FUSION, max_epochs=6)


def test_fusion_sums_each_members_surprise_among_the_validation_normals(data, fusion):
    _, X_val, batch, y = data
    members = fusion.model_.members_
    assert list(members) == ["vae", "neutral"]
    assert len(fusion.history) == 12 and [h["epoch"] for h in fusion.history] == list(range(12))
    expected = np.zeros(len(batch))
    for member in members.values():
        val = np.sort(member.score(X_val)[0].astype(np.float64))
        s = member.score(batch)[0].astype(np.float64)
        counted = -np.log10((len(val) - np.searchsorted(val, s, side="left") + 1) / (len(val) + 1))
        below = s <= np.quantile(val, 0.99)
        expected[below] += counted[below]
        expected[~below] += np.nan  # the fitted tail: checked against the calibration below
    got = fusion.score(batch)[0]
    np.testing.assert_allclose(got[np.isfinite(expected)], expected[np.isfinite(expected)], rtol=1e-6)
    assert roc_auc_score(y, got) > 0.95
    assert roc_auc_score(y, got) >= min(roc_auc_score(y, m.score(batch)[0]) for m in members.values())


def test_fusion_explains_through_its_first_member_with_feature_scores(data, fusion):
    """The VAE member's feature scores and latent codes: a fused score is no sum over features."""
    _, _, batch, _ = data
    vae = fusion.model_.members_["vae"]
    assert fusion.has_feature_scores and fusion.has_latent
    torch.manual_seed(0)
    got = fusion.score(batch)[1]
    torch.manual_seed(0)
    np.testing.assert_array_equal(got, vae.score(batch)[1])
    np.testing.assert_array_equal(fusion.latent(batch[:50]), vae.latent(batch[:50]))
    assert fusion.explain(batch[:20], k=3).shape == (20, 6)
    alone = Detector({"name": "fusion", "members": {"neutral": NEUTRAL, "forest": {"name": "iforest"}}})
    assert not alone.has_feature_scores and alone.has_latent  # NeuTraL AD's encoder codes


def test_a_member_trains_to_its_own_epoch_cap(data):
    X, X_val, *_ = data
    det = _fit(X, X_val, {**FUSION, "member_epochs": {"neutral": 2}}, max_epochs=4)
    caps = {label: m.trainer.max_epochs for label, m in det.model_.members_.items()}
    assert caps == {"vae": 4, "neutral": 2} and len(det.history) == 4 + 2  # each trained to its cap
    # a member's cap above trainer.max_epochs does not raise it: a quick run stays quick
    quick = Detector({**FUSION, "member_epochs": {"neutral": 9}}, trainer={"max_epochs": 2})._new_model()
    assert {label: m.trainer.max_epochs for label, m in quick.members_.items()} == {"vae": 2, "neutral": 2}
    refused = r"member_epochs names \['nn'\], not members; the members are \['neutral', 'vae'\]"
    with pytest.raises(ValueError, match=refused):
        MODEL_ADAPTER.validate_python({**FUSION, "member_epochs": {"nn": 2}})


def test_fusion_scoring_settings_reach_its_members(fusion):
    fusion.set_score(samples=3)
    try:
        assert fusion.model_.members_["vae"].score_cfg.samples == 3
    finally:
        fusion.set_score(samples=ScoreConfig().samples)


def test_fusion_saves_and_loads_to_identical_scores(tmp_path, data, fusion):
    *_, batch, _ = data
    folder = fusion.save(tmp_path / "det")
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*.pt")} == {
        "members/vae/network.pt",
        "members/neutral/network.pt",
    }
    np.testing.assert_array_equal(Detector.load(folder).score(batch)[0], fusion.score(batch)[0])
    calibration = folder / "fusion.json"
    saved = json.loads(calibration.read_text())
    saved["members"].pop("neutral")
    calibration.write_text(json.dumps(saved))
    with pytest.raises(DetectorError, match=r"fusion\.json: calibrates members \['vae'\], .* \['neutral', 'vae'\]"):
        Detector.load(folder)
    saved["members"]["neutral"] = {**saved["members"]["vae"], "tail_scale": -1.0}
    calibration.write_text(json.dumps(saved))
    bad_scale = r"fusion\.json: not a valid calibration: key 'members\.neutral\.tail_scale'"
    with pytest.raises(DetectorError, match=bad_scale):
        Detector.load(folder)


@pytest.mark.parametrize(
    "members, message",
    [
        ({"vae": FUSION["members"]["vae"]}, "expected at least two members"),
        ({"Bad/label": NEUTRAL, "vae": FUSION["members"]["vae"]}, "member labels are folder names"),
        ({"inner": FUSION, "vae": FUSION["members"]["vae"]}, "does not match any of the expected tags"),
    ],
)
def test_a_fusion_of_one_member_another_fusion_or_a_path_label_is_refused(members, message):
    with pytest.raises(ValueError, match=message):
        MODEL_ADAPTER.validate_python({"name": "fusion", "members": members})


def test_the_default_fusion_holds_the_vae_preset_and_lean_neutral_ad():
    from kddad import config

    def composed(*overrides: str):
        return config.validate(yaml.safe_load(config.compose_yaml(PRESET.parents[1], list(overrides))))

    cfg = composed()
    assert cfg.model == composed("model=fusion").model
    vae = composed("model=vae").model.model_copy(update={"batch_size": 1024, "lr": 0.003})
    assert cfg.model.members == {"vae": vae, "neutral": composed("model=neutral_lean").model}
    assert cfg.model.architecture == "fusion vae 64-32 z8 + neutral 64-32 r16 k4 mul"
    # model=fusion_kdd: the NeuTraL AD member as experiment=neutral_kddcup has it
    assert composed("model=fusion_kdd").model.members["neutral"] == composed("experiment=neutral_kddcup").model
