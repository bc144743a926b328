"""The train and threshold stages as library calls, on the real default split (2 epochs)."""

import json

import numpy as np
import pytest
from helpers.config import compose, with_keys
from helpers.run import run

from kddad import Detector
from kddad.config import MODEL_ADAPTER
from kddad.paths import Paths
from kddad.stages.data import download, encode, split
from kddad.stages.model import threshold, train


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mirror):
    cfg = compose(mirror=mirror)
    paths = Paths(tmp_path_factory.mktemp("proj"))
    for stage in (download, split, encode):
        stage(cfg, paths)
    return cfg, paths


def test_train_then_percentile_threshold(prepared):
    cfg, paths = prepared
    det = train(cfg, paths)
    members = paths.detector / "members"
    assert (members / "vae" / "network.pt").is_file() and (members / "neutral" / "network.pt").is_file()
    assert (paths.detector / "encoder" / "encoder.json").is_file()
    curve = (paths.reports / "train_curve.csv").read_text().splitlines()
    assert curve[0] == "epoch,train_loss,val_loss" and len(curve) == 5  # 2 epochs a member
    info = threshold(cfg, paths)
    X = np.load(paths.features / "threshold.npy")
    scores, _ = Detector.load(paths.detector).score(X)
    assert info["threshold"] == pytest.approx(np.percentile(scores, 95))
    assert info["method"] == "percentile" and info["perc_outlier"] == 5 and info["flagged"] == 500
    assert json.loads(paths.threshold.read_text()) == info
    assert det.history and len(det.history) == 4  # 2 epochs a member


def test_fpr_threshold_on_validation_normals(prepared):
    cfg, paths = prepared
    train(cfg, paths)
    info = threshold(with_keys(cfg, threshold={"method": "fpr", "fpr": 0.01}), paths)
    n_val = len(np.load(paths.features / "val.npy"))
    assert info["on"] == "data/features/val.npy" and info["outliers_in_batch"] == 0
    assert info["flagged"] == pytest.approx(0.01 * n_val, abs=2)


def test_f1_threshold_on_the_labelled_batch(prepared):
    cfg, paths = prepared
    train(cfg, paths)
    info = threshold(with_keys(cfg, threshold={"method": "f1"}), paths)
    X, y = np.load(paths.features / "threshold.npy"), np.load(paths.features / "threshold_y.npy")
    scores, _ = Detector.load(paths.detector).score(X)
    flagged = scores > info["threshold"]
    assert info["method"] == "f1" and info["on"] == "data/features/threshold.npy"
    assert info["flagged"] == flagged.sum() and info["flagged_outliers"] == (flagged & (y == 1)).sum()
    f1 = 2 * info["flagged_outliers"] / (info["flagged"] + y.sum())
    at_percentile = 2 * (flagged_p := scores > np.percentile(scores, 95))[y == 1].sum() / (flagged_p.sum() + y.sum())
    assert f1 >= at_percentile


def test_threshold_refuses_a_detector_trained_for_another_score(prepared):
    from kddad.errors import DataError

    cfg, paths = prepared
    train(cfg, paths)
    other = "mse" if cfg.score.name == "likelihood" else "likelihood"
    with pytest.raises(DataError, match=f"trained for score '{cfg.score.name}'.*re-run the train stage"):
        threshold(with_keys(cfg, score={"name": other}), paths)


def test_ae_mse_through_the_stages(prepared):
    cfg, paths = prepared
    ae = {"name": "ae", "hidden": [16, 8], "latent": 3, "output_activation": "linear"}
    c = with_keys(cfg, model=MODEL_ADAPTER.validate_python(ae), score={"name": "mse"})
    train(c, paths)
    info = threshold(c, paths)
    assert info["score"]["name"] == "mse" and np.isfinite(info["threshold"])


def test_scoring_a_trained_network_does_not_import_lightning(prepared):
    """Threshold and evaluate only score: Lightning (seconds to import) is for training."""
    import sys

    _, paths = prepared
    code = (
        "import sys, numpy as np; from kddad import Detector; "
        f"det = Detector.load({str(paths.detector)!r}); "
        f"X = np.load({str(paths.features / 'test.npy')!r})[:100]; det.score(X); "
        "print('pytorch_lightning' in sys.modules, 'lightning' in sys.modules)"
    )
    out = run([sys.executable, "-c", code]).stdout
    assert out.split() == ["False", "False"]


def test_evaluate_scores_a_large_split_in_pieces_as_one_pass_would(prepared, monkeypatch):
    """The held-out attacks are scored a chunk at a time and keep only their labels and keys."""
    import pandas as pd

    from kddad.evaluation.views import ROW_COLUMNS, with_distinct_key
    from kddad.stages import evaluate as ev

    cfg, paths = prepared
    if not (paths.detector / "detector.json").is_file():
        train(cfg, paths)
    det = Detector.load(paths.detector)
    monkeypatch.setattr(ev, "SCORE_CHUNK", 3 * 4096)
    view = ev.split_view(det, "attacks", paths)
    X = np.load(paths.features / "attacks.npy")
    assert len(X) > 10 * ev.SCORE_CHUNK
    assert np.array_equal(view.scores, det.score(X)[0])
    whole = with_distinct_key(pd.read_parquet(paths.split / "attacks.parquet"))
    assert list(view.frame.columns) == [c for c in ROW_COLUMNS if c in whole]
    pd.testing.assert_frame_equal(view.frame, whole[list(view.frame.columns)])
