"""Detector and scores on slices of the real data (Lightning training included)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from kddad.config import NetworkConfig
from kddad.data import fields
from kddad.detector import Detector, DetectorError
from kddad.features.encoder import FeatureEncoder
from kddad.models.autoencoder import reconstruction_loss
from kddad.models.networks import AENetwork, DecoderHead
from kddad.models.scores import gaussian_log_prob, likelihood_scores, mse_scores, top_mean

QUICK = {"max_epochs": 3, "enable_progress_bar": False, "accelerator": "cpu"}
SMALL = {
    "ae": {"name": "ae", "hidden": [16, 8], "latent": 3, "output_activation": "linear"},
    "vae": {"name": "vae", "hidden": [20, 15, 7], "latent": 2},
}


@pytest.fixture(scope="module")
def data(kdd):
    """Encoded real rows: 6,000 normals to train on, a mixed batch with 10% attacks."""
    normal = kdd[kdd["label"] == "normal"].sample(8000, random_state=0)
    attacks = kdd[kdd["label"] != "normal"].sample(200, random_state=0)
    enc = FeatureEncoder(fields.ALIBI18, scaling="standard").fit(normal.iloc[:6000])
    batch = np.concatenate([enc.transform(normal.iloc[6000:7800]), enc.transform(attacks)])
    y = np.r_[np.zeros(1800), np.ones(200)]
    return enc, enc.transform(normal.iloc[:5000]), enc.transform(normal.iloc[5000:6000]), batch, y, normal


@pytest.fixture(scope="module")
def fitted(data):
    _, X, X_val, *_ = data
    out = {}
    for model in ("ae", "vae"):
        for score in ("mse", "likelihood"):
            out[model, score] = Detector(SMALL[model], {"name": score, "samples": 4}, QUICK, seed=0).fit(X, X_val)
    return out


@pytest.mark.parametrize("model", ["ae", "vae"])
@pytest.mark.parametrize("score", ["mse", "likelihood"])
def test_training_lowers_the_loss(data, fitted, model, score):
    _, X, X_val, *_ = data
    det = fitted[model, score]
    untrained = Detector(SMALL[model], {"name": score}, seed=0)
    torch.manual_seed(0)
    net0 = untrained._new_model().build(X.shape[1])
    x = torch.from_numpy(X_val)
    kw = dict(likelihood=score == "likelihood", beta=1.0, recon_std=0.01)
    with torch.no_grad():
        before = reconstruction_loss(net0.eval(), x, **kw).item()
        after = reconstruction_loss(det.model_.network.eval(), x, **kw).item()
    assert after < before
    assert len(det.history) == 3 and det.history[-1]["val_loss"] < det.history[0]["val_loss"]
    assert all(math.isfinite(h["train_loss"]) for h in det.history)  # the epoch's own, not the previous
    assert det.history[-1]["train_loss"] < det.history[0]["train_loss"]


@pytest.mark.parametrize("model", ["ae", "vae"])
@pytest.mark.parametrize("score", ["mse", "likelihood"])
def test_scores_have_the_right_shapes_and_rank_attacks_higher(data, fitted, model, score):
    *_, batch, y, _ = data
    inst, feat = fitted[model, score].score(batch)
    assert inst.shape == (len(batch),) and feat.shape == batch.shape
    assert np.isfinite(inst).all() and np.isfinite(feat).all()
    assert inst[y == 1].mean() > inst[y == 0].mean()


def test_likelihood_score_equals_a_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3))
    mean = rng.normal(size=(5, 4, 3))  # 5 latent samples
    var = rng.uniform(0.2, 2.0, size=(5, 4, 3))
    dens = norm.pdf(x, loc=mean, scale=np.sqrt(var))  # p(x_j | z_l)
    want_inst = -np.log(np.prod(dens, axis=2).mean(axis=0))  # -log mean_l prod_j p(x_j | z_l)
    want_feat = -np.log(dens.mean(axis=0))
    t = [torch.tensor(a) for a in (x, mean, var)]
    inst, feat = likelihood_scores(*t)
    assert np.allclose(inst.numpy(), want_inst) and np.allclose(feat.numpy(), want_feat)
    inst1, feat1 = likelihood_scores(t[0], t[1][0], t[2][0])  # no latent samples: sum of feature NLLs
    assert np.allclose(feat1.numpy(), -norm.logpdf(x, mean[0], np.sqrt(var[0])))
    assert np.allclose(inst1.numpy(), feat1.numpy().sum(1))


def test_likelihood_score_of_a_network_with_known_weights():
    net = AENetwork(3, NetworkConfig(name="ae", hidden=[4], latent=2), DecoderHead(gaussian=True, min_var=0.01))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.decoder.mean.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
        net.decoder.var.bias.copy_(torch.tensor([0.0, 1.0, -2.0]))
    det = Detector({"name": "ae", "hidden": [4], "latent": 2}, {"name": "likelihood", "min_var": 0.01})
    det.model_, det.n_features = det._new_model(), 3
    det.model_.network = net
    x = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 3.0]], dtype=np.float32)
    var = 0.01 + np.log1p(np.exp([0.0, 1.0, -2.0]))  # min_var + softplus
    want = -norm.logpdf(x, [0.5, -1.0, 2.0], np.sqrt(var))
    inst, feat = det.score(x)
    assert np.allclose(feat, want, rtol=1e-5) and np.allclose(inst, want.sum(1), rtol=1e-5)


def test_a_floor_per_feature_follows_the_training_rows_variance(data, tmp_path):
    """min_var_share: the variance head's floor is that share of each feature's training variance,
    min_var where a feature is constant; it is trained with, saved and loaded with the weights."""
    _, X, X_val, batch, *_ = data
    X = X.copy()
    X[:, 0] = 0.25  # a feature constant in the training rows
    score = {"name": "likelihood", "min_var": 0.01, "min_var_share": 0.5, "samples": 4}
    det = Detector(SMALL["vae"], score, QUICK, seed=0).fit(X, X_val)
    floor = det.model_.network.decoder.floor.numpy()
    want = np.maximum(0.5 * X.astype(np.float64).var(0), 0.01)
    assert np.allclose(floor, want, rtol=1e-5) and floor[0] == np.float32(0.01) and (floor[1:] > 0.1).all()
    with torch.no_grad():
        out = det.model_.network(torch.from_numpy(batch), samples=2)
    assert (out.var >= torch.from_numpy(floor) - 1e-7).all()
    loaded = Detector.load(det.save(tmp_path / "det"))
    np.testing.assert_array_equal(loaded.model_.network.decoder.floor.numpy(), floor)
    np.testing.assert_array_equal(loaded.score(batch)[0], det.score(batch)[0])
    plain = Detector(SMALL["vae"], {**score, "min_var_share": 0.0}, QUICK, seed=0).fit(X, X_val)
    assert not hasattr(plain.model_.network.decoder, "floor")  # min_var alone: no buffer, as before


def test_mse_instance_score_is_the_mean_of_the_top_features():
    x = torch.zeros(1, 4)
    mean = torch.tensor([[[1.0, 2.0, 0.0, 3.0]], [[1.0, 0.0, 0.0, 1.0]]])  # 2 samples
    inst, feat = mse_scores(x, mean, outlier_perc=50)
    assert feat.tolist() == [[1.0, 2.0, 0.0, 5.0]]  # squared errors averaged over samples
    assert inst.item() == pytest.approx(3.5)  # mean of the top 2 of 4
    assert top_mean(feat, 100).item() == pytest.approx(2.0)


def test_threshold_is_the_stated_percentile(data, fitted):
    *_, batch, y, _ = data
    det = fitted["vae", "mse"]
    t = det.infer_threshold(batch, perc_outlier=10)
    scores, _ = det.score(batch)
    assert t == pytest.approx(np.percentile(scores, 90))
    pred = det.predict(batch)
    assert pred.is_outlier.mean() == pytest.approx(0.10, abs=0.002)
    assert det.threshold_info == {"method": "percentile", "perc_outlier": 10, "rows": len(batch)}


def test_threshold_at_a_false_positive_rate_uses_normal_rows_only(data, fitted):
    _, _, X_val, *_ = data
    det = fitted["ae", "likelihood"]
    det.infer_threshold_fpr(X_val, fpr=0.02)
    assert det.predict(X_val).is_outlier.mean() == pytest.approx(0.02, abs=0.002)


def test_f1_threshold_has_the_best_f1_any_cut_gives_the_batch(data, fitted):
    from sklearn.metrics import f1_score

    *_, batch, y, _ = data
    det = fitted["vae", "likelihood"]
    scores, _ = det.score(batch)
    t = det.infer_threshold_f1(batch, y)
    best = f1_score(y, scores > t)
    every_cut = [f1_score(y, scores > c) for c in np.unique(scores)]
    assert best == pytest.approx(max(every_cut)) and best > f1_score(y, scores > np.percentile(scores, 90))
    assert not np.isin(t, scores)  # between two scores, not on one
    assert det.threshold_info == {"method": "f1", "rows": len(batch)}
    with pytest.raises(DetectorError, match="threshold.method=f1: .*got 0 outliers of 1800"):
        det.infer_threshold_f1(batch[:1800], y[:1800])


@pytest.mark.parametrize("model, score", [("ae", "mse"), ("vae", "mse"), ("vae", "likelihood")])
def test_save_load_gives_identical_scores(data, fitted, tmp_path, model, score):
    enc, *_, batch, _, normal = data
    det = fitted[model, score]
    det.encoder = enc
    det.infer_threshold(batch, 5)
    det.save(tmp_path / "det")
    back = Detector.load(tmp_path / "det")
    assert back.threshold == det.threshold and back.score_cfg == det.score_cfg
    assert all(np.array_equal(a, b) for a, b in zip(back.score(batch), det.score(batch)))
    # with the encoder inside, raw KDD rows go straight in
    frame = normal.iloc[7000:7100]
    assert np.array_equal(back.predict(frame).instance_score, det.score(enc.transform(frame))[0])


def test_vae_with_no_samples_scores_the_likelihood_of_the_posterior_means_decoding(data, fitted):
    *_, batch, _, _ = data
    det = fitted["vae", "likelihood"]
    det.set_score(samples=0)
    try:
        inst, feat = det.score(batch)
        net = det.model_.network
        with torch.no_grad():
            x = torch.from_numpy(batch)
            mean, var = net.decoder(net.encode(x))
            nll = -gaussian_log_prob(x, mean, var).numpy()
        np.testing.assert_allclose(feat, nll, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(inst, nll.sum(1), rtol=1e-5, atol=1e-3)
        assert not np.allclose(inst, det.set_score(samples=4).score(batch)[0], rtol=1e-3)  # draws do change it
    finally:
        det.set_score(samples=4)


def test_vae_scores_are_reproducible_and_depend_on_samples(data, fitted):
    *_, batch, _, _ = data
    det = fitted["vae", "mse"]
    a, _ = det.score(batch)
    assert np.array_equal(a, det.score(batch)[0])
    det.set_score(samples=1)
    try:
        assert not np.array_equal(a, det.score(batch)[0])
    finally:
        det.set_score(samples=4)
    with pytest.raises(DetectorError, match="refit"):
        det.set_score(name="likelihood")


class Payload:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_a_checkpoint_holding_a_pickled_object_is_refused(fitted, tmp_path):
    det = fitted["ae", "mse"]
    det.save(tmp_path / "det")
    state = torch.load(tmp_path / "det" / "network.pt", weights_only=True)
    torch.save({**state, "extra": Payload()}, tmp_path / "det" / "network.pt")
    with pytest.raises(DetectorError, match="refusing to load"):
        Detector.load(tmp_path / "det")


def test_wrong_input_width_is_named(fitted):
    with pytest.raises(DetectorError, match="expected 18 features, got 5"):
        fitted["ae", "mse"].score(np.zeros((3, 5), dtype=np.float32))


def test_unfitted_detector_says_so():
    with pytest.raises(DetectorError, match="not fitted"):
        Detector(SMALL["ae"]).score(np.zeros((2, 18), dtype=np.float32))


@pytest.mark.parametrize("score", ["mse", "likelihood"])
def test_a_row_far_outside_the_training_data_still_gets_a_finite_score(data, fitted, score):
    """split=dagmm scales rows to |x| ≈ 1e4; the latent log-variance once overflowed to NaN scores."""
    *_, batch, y, _ = data
    det = fitted["vae", score]
    far = batch[:4] * 1e4
    with torch.no_grad():
        out = det.model_.network(torch.from_numpy(far))
    assert out.z_logvar.max() <= 20 and torch.isfinite(out.z).all()
    inst, _ = det.score(far)
    assert np.isfinite(inst).all() and (inst > det.score(batch[:4])[0]).all()


def test_non_finite_scores_stop_with_a_clear_error(fitted):
    det = fitted["ae", "mse"]
    x = np.full((3, det.n_features), 3e38, dtype=np.float32)  # overflows any squared error
    with pytest.raises(DetectorError, match=r"3 of 3 scores are not finite"):
        det.score(x)


def test_a_rows_score_does_not_depend_on_what_is_scored_with_it(data, fitted):
    """Latent draws are shared by all rows: chunked files, single requests and whole batches agree."""
    *_, batch, _, _ = data
    det = fitted["vae", "likelihood"]
    whole, _ = det.score(batch)
    alone = np.concatenate([det.score(batch[i : i + 1])[0] for i in range(0, 50)])
    shuffled = det.score(batch[::-1])[0][::-1]
    np.testing.assert_allclose(alone, whole[:50], rtol=1e-5)
    np.testing.assert_allclose(shuffled, whole, rtol=1e-5)


def test_explain_names_raw_features_with_shares(kdd, tmp_path):
    normal = kdd[kdd["label"] == "normal"].sample(3000, random_state=1)
    attacks = kdd[kdd["label"] != "normal"].sample(300, random_state=1)
    enc = FeatureEncoder(fields.NUMERIC, fields.CATEGORICAL)
    det = Detector(SMALL["ae"], {"name": "mse"}, QUICK, encoder=enc, seed=0).fit(normal)
    assert det.feature_reference.shape == (det.n_features,)
    rows = attacks.reset_index(drop=True)
    why = det.explain(rows, k=3)
    assert list(why.columns) == ["feature_1", "share_1", "feature_2", "share_2", "feature_3", "share_3"]
    names = set(fields.NUMERIC) | {f"{c}={v}" for c in fields.CATEGORICAL for v in rows[c].unique()}
    assert set(why[["feature_1", "feature_2", "feature_3"]].to_numpy().ravel()) <= names
    service = why["feature_1"].str.startswith("service=")
    assert (why.loc[service, "feature_1"] == "service=" + rows.loc[service, "service"]).all()
    shares = why[["share_1", "share_2", "share_3"]].to_numpy()
    assert (shares >= 0).all() and (np.diff(shares, axis=1) <= 1e-7).all() and (shares.sum(1) <= 1 + 1e-5).all()
    # the share of one raw feature: its one-hot block summed, above the normal rows' median
    feat = det.score(rows)[1]
    excess = np.add.reduceat(feat - det.feature_reference, [g.columns.start for g in enc.groups], axis=1)
    positive = np.clip(excess, 0, None)
    top = np.argmax(excess[0])
    assert why["share_1"][0] == pytest.approx(positive[0, top] / positive[0].sum(), rel=1e-5)
    # kept through save/load; predictions reused without rescoring
    det.infer_threshold(det.encoder.transform(rows), 50)
    again = Detector.load(det.save(tmp_path / "d"))
    np.testing.assert_allclose(again.feature_reference, det.feature_reference)
    pred = again.predict(rows)
    assert again.explain(rows, 3, prediction=pred).equals(why)


def test_explain_needs_feature_scores(kdd):
    normal = kdd[kdd["label"] == "normal"].head(2000)
    enc = FeatureEncoder(fields.NUMERIC)
    det = Detector({"name": "iforest", "n_estimators": 10}, encoder=enc).fit(normal)
    with pytest.raises(DetectorError, match="no per-feature scores"):
        det.explain(normal, 3)


def test_device_auto_scores_like_cpu_and_a_missing_device_is_named(data, fitted, tmp_path):
    *_, batch, _, _ = data
    det = fitted["vae", "likelihood"]
    det.infer_threshold(batch, 10)
    path = det.save(tmp_path / "d")
    cpu = Detector.load(path, device="cpu").score(batch)[0]
    auto = Detector.load(path, device="auto").score(batch)[0]
    np.testing.assert_allclose(auto, cpu, rtol=1e-4)
    if not torch.cuda.is_available():
        with pytest.raises(DetectorError, match="sees no CUDA device"):
            Detector.load(path, device="cuda")
    with pytest.raises(DetectorError, match="expected auto, cpu, cuda"):
        Detector.load(path, device="gpu0")
