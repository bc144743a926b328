"""A model kind whose loss is no reconstruction, through the shared loop: Deep SVDD on real rows.

Driven as a user drives any kind, through ``Detector(model={"name": "deep_svdd", ...})``; the
graphed step with FakeGraph is checked beside the VAE's in tests/test_training.py.
"""

from __future__ import annotations

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


def _fit(X: np.ndarray, X_val: np.ndarray, **trainer) -> Detector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(SVDD, trainer={**QUICK, **trainer}, seed=0).fit(X, X_val)


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(NEUTRAL, trainer={**QUICK, "max_epochs": 12}, seed=0).fit(X, X_val)


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
