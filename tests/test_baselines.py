"""The scikit-learn baselines behind the Detector interface, on slices of the real data."""

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from kddad import config
from kddad.data import fields
from kddad.detector import Detector, DetectorError
from kddad.errors import ConfigError
from kddad.features.encoder import FeatureEncoder


@pytest.fixture(scope="module")
def data(kdd):
    normal = kdd[kdd["label"] == "normal"].sample(7000, random_state=1)
    attacks = kdd[kdd["label"] != "normal"].sample(300, random_state=1)
    enc = FeatureEncoder(fields.NUMERIC, categorical=fields.CATEGORICAL, scaling="standard").fit(normal.iloc[:5000])
    batch = np.concatenate([enc.transform(normal.iloc[5000:7000]), enc.transform(attacks)])
    return (
        enc.transform(normal.iloc[:4500]),
        enc.transform(normal.iloc[4500:5000]),
        batch,
        np.r_[np.zeros(2000), np.ones(300)],
    )


def test_pca_scores_are_the_networks_scores_of_its_reconstruction(data):
    X, X_val, batch, y = data
    det = Detector({"name": "pca", "n_components": 5}, {"name": "mse", "outlier_perc": 100}).fit(X, X_val)
    ref = PCA(n_components=5, random_state=0).fit(X)
    recon = ref.inverse_transform(ref.transform(batch))
    inst, feat = det.score(batch)
    np.testing.assert_allclose(feat, (batch - recon) ** 2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(inst, ((batch - recon) ** 2).mean(1), rtol=1e-4, atol=1e-5)
    assert roc_auc_score(y, inst) > 0.9
    assert det.history[0]["val_loss"] > 0 and det.latent(batch).shape == (len(batch), 5)


def test_pca_likelihood_uses_the_training_residual_variance(data):
    X, X_val, batch, _ = data
    det = Detector({"name": "pca", "n_components": 5}, {"name": "likelihood", "min_var": 1e-3}).fit(X, X_val)
    ref = PCA(n_components=5, random_state=0).fit(X)
    var = np.maximum((X - ref.inverse_transform(ref.transform(X))).var(0), 1e-3)
    resid = batch - ref.inverse_transform(ref.transform(batch))
    nll = 0.5 * (np.log(2 * np.pi * var) + resid**2 / var)
    inst, feat = det.score(batch)
    np.testing.assert_allclose(feat, nll, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(inst, nll.sum(1), rtol=1e-3, atol=1e-2)
    with torch.no_grad():  # the scores' in-place path: the same scores, the fitted variance left as it was
        first, second = det.score(batch)[0], det.score(batch)[0]
    np.testing.assert_allclose(first, inst, rtol=1e-5, atol=1e-4)
    assert np.array_equal(first, second)


def test_iforest_scores_higher_for_anomalies_and_has_no_feature_scores(data):
    X, X_val, batch, y = data
    det = Detector({"name": "iforest", "n_estimators": 50}, {"name": "mse"}, seed=3).fit(X, X_val)
    inst, feat = det.score(batch)
    ref = IsolationForest(n_estimators=50, random_state=3).fit(X)
    np.testing.assert_allclose(inst, -ref.score_samples(batch), rtol=1e-6)
    assert feat.shape == (len(batch), 0) and not det.has_feature_scores and not det.has_latent
    assert roc_auc_score(y, inst) > 0.8
    thr = det.infer_threshold(batch, perc_outlier=300 / 23)
    assert thr == pytest.approx(np.percentile(inst, 100 - 300 / 23))
    np.testing.assert_array_equal(det.predict(batch).is_outlier, inst > thr)


@pytest.mark.parametrize("model", [{"name": "pca", "n_components": 0.9}, {"name": "iforest", "n_estimators": 20}])
def test_baselines_save_and_load_without_pickle(data, tmp_path, model):
    X, X_val, batch, _ = data
    det = Detector(model, {"name": "mse"}).fit(X, X_val)
    det.infer_threshold(batch, 10)
    det.save(tmp_path / "det")
    assert not (tmp_path / "det" / "network.pt").exists() and (tmp_path / "det" / "baseline.skops").is_file()
    back = Detector.load(tmp_path / "det")
    np.testing.assert_array_equal(back.predict(batch).is_outlier, det.predict(batch).is_outlier)
    assert back.threshold == det.threshold


def _past_the_end(state):  # a child index past the end of the node array
    tree = state["estimator"].estimators_[1].tree_
    tree.children_left[0] = tree.node_count + 7


def _right_child_missing(state):  # scikit-learn would read nodes[-1]
    state["estimator"].estimators_[1].tree_.children_right[0] = -1


def _child_before_parent(state):  # a child pointing back at the root: an endless walk
    tree = state["estimator"].estimators_[1].tree_
    tree.children_left[int(np.flatnonzero(tree.children_left != -1)[1])] = 0


def _short_residual_variance(state):
    state["residual_var"] = state["residual_var"][:-1]


@pytest.mark.parametrize(
    "model, tamper, error",
    [
        ("iforest", _past_the_end, r"tree 1 has node or feature indices out of range"),
        ("iforest", _right_child_missing, r"tree 1 has node or feature indices out of range"),
        ("iforest", _child_before_parent, r"tree 1 has node or feature indices out of range"),
        ("pca", _short_residual_variance, r"residual_var must be \d+ positive finite variances"),
    ],
)
def test_a_tampered_baseline_file_is_refused_before_use(data, tmp_path, model, tamper, error):
    X, X_val, *_ = data
    settings = {"name": "iforest", "n_estimators": 3} if model == "iforest" else {"name": "pca", "n_components": 3}
    Detector(settings, {"name": "likelihood"}).fit(X, X_val).save(tmp_path / "det")
    file = tmp_path / "det" / "baseline.skops"
    state = sio.load(file, trusted=["sklearn.tree._tree.Tree"] if model == "iforest" else [])
    tamper(state)
    sio.dump(state, file)
    with pytest.raises(DetectorError, match=r"baseline\.skops.*" + error):
        Detector.load(tmp_path / "det")


def test_a_baseline_file_holding_another_estimator_is_refused(data, tmp_path):
    X, X_val, *_ = data
    Detector({"name": "pca", "n_components": 3}, {"name": "mse"}).fit(X, X_val).save(tmp_path / "det")
    sio.dump(
        {"estimator": IsolationForest(n_estimators=2).fit(X), "residual_var": None}, tmp_path / "det" / "baseline.skops"
    )
    with pytest.raises(DetectorError, match=r"baseline\.skops"):
        Detector.load(tmp_path / "det")


@pytest.mark.parametrize(
    "model, key",
    [
        ({"name": "pca", "n_components": 2.5}, "model.n_components"),
        ({"name": "iforest", "max_samples": 0}, "model.max_samples"),
        ({"name": "iforest", "trees": 5}, "model.trees"),
        ({"n_components": 5}, "model.name: required key is missing"),
    ],
)
def test_bad_baseline_settings_name_the_key(cfg, model, key):
    raw = cfg.model_dump()
    raw["model"] = model
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config.validate(raw)
