"""The train → threshold → evaluate stages against real MLflow stores: SQLite and a server."""

import json
import logging
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from helpers.config import compose
from helpers.data import slice_overrides
from helpers.net import free_port
from helpers.tracked import at, where_each_went
from mlflow.tracking import MlflowClient

from kddad import config
from kddad.paths import Paths, project_root
from kddad.stages.data import download, encode, split
from kddad.stages.evaluate import evaluate
from kddad.stages.model import threshold, train
from kddad.tracking import Tracker, flatten, resolve_uri

FIGURES = {
    "confusion_matrix.png",
    "roc.png",
    "roc_by_category.png",
    "precision_recall.png",
    "instance_scores.png",
    "score_histogram.png",
    "top_outlier_features.png",
    "training_curve.png",
    "latent_space.png",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory, kdd_slice):
    """The default pipeline (2 epochs) on a slice of the real file, run once into a project folder
    with a SQLite store."""
    paths = Paths(tmp_path_factory.mktemp("proj"))
    tracking = {"experiment": "test-sqlite", "uri": f"sqlite:///{paths.root / 'mlflow.db'}"}
    cfg = compose(*slice_overrides(kdd_slice), tracking=tracking)
    for stage in (download, split, encode, train, threshold, evaluate):
        stage(cfg, paths)
    return cfg, paths


def test_one_run_spans_the_stages_with_config_metrics_and_artifacts(project):
    cfg, paths = project
    client = MlflowClient(f"sqlite:///{paths.root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test-sqlite")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    # the whole composed config as params
    assert run.data.params == {k: str(v) for k, v in flatten(cfg.model_dump()).items()}
    assert run.data.params["split.test.n"] == "20000" and run.data.params["model.members.vae.hidden"] == "[64, 32]"
    assert {"dataset", "features", "model", "score"} <= set(run.data.tags)
    assert run.data.tags["features"] == "all41" and run.data.tags["score"] == "likelihood"
    assert run.data.tags["architecture"] == "fusion vae 64-32 z8 + neutral 64-32 r16 k4 mul"
    # what MLflow's UI shows as the run's source, user and description (the stages ran in pytest here)
    tags = run.data.tags
    assert tags["mlflow.user"] and tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"]
    note = tags["mlflow.note.content"]
    assert note.startswith(f"Command: `python {tags['mlflow.source.name']}") and "Model: fusion vae 64-32 z8" in note
    # outside a git repository (the stages ran in-process, in a temporary folder): named for what it is alone
    assert run.info.run_name == "all41 fusion vae 64-32 z8 + neutral 64-32 r16 k4 mul likelihood"
    assert "params_changed" not in tags and "params.yaml" not in note
    # final metrics equal the metrics file; per-epoch losses from training
    metrics = json.loads((paths.reports / "metrics.json").read_text())
    for key in ("f1", "precision", "recall", "roc_auc", "pr_auc"):
        assert run.data.metrics[key] == pytest.approx(metrics[key])
    assert run.data.metrics["macro_roc_auc"] == pytest.approx(metrics["macro_roc_auc"])
    r2l = metrics["heldout_attacks"]["categories"]["r2l"]
    assert run.data.metrics["roc_auc.r2l"] == pytest.approx(r2l["roc_auc"])
    assert [len(client.get_metric_history(run.info.run_id, f"{m}.val_loss")) for m in ("vae", "neutral")] == [2, 2]
    assert run.data.metrics["threshold"] == pytest.approx(json.loads(paths.threshold.read_text())["threshold"])
    # a few dozen metrics; every other number of metrics.json in a table beside it, none lost
    listing = where_each_went(client, run.info.run_id, metrics, paths.root)
    assert listing["heldout_attacks.categories.r2l.recall_at_fpr.0.01"] == (
        "tables/categories.csv [heldout_attacks, r2l] recall_at_fpr.0.01"
    )
    assert listing["test.confusion.tp"] == "tables/views.csv [test] confusion.tp"
    assert listing["operating_point.recall.r2l"] == "metric recall.r2l"
    with at(paths.root):  # the store's artifact locations are relative to its folder
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        figures = {a.path.split("/")[-1] for a in client.list_artifacts(run.info.run_id, "figures")}
    assert {"metrics.json", "threshold.json", "config.yaml", "figures", "tables"} <= top
    assert figures >= FIGURES
    # artifacts live beside the database, not in whatever folder the stage ran in, found from there
    assert (paths.root / "mlartifacts").is_dir() and run.info.artifact_uri.startswith("mlartifacts/")
    # the logged model names its run and its data set, and carries the headline metrics on that data set
    [model] = client.search_logged_models([exp.experiment_id])
    assert model.source_run_id == run.info.run_id and model.tags["run"] == run.info.run_name
    assert model.tags["dataset"].startswith(f"{cfg.dataset.name} (")
    f1 = [m for m in model.metrics if m.key == "f1"]
    assert len(f1) == 1 and f1[0].dataset_name == cfg.dataset.name and f1[0].value == pytest.approx(metrics["f1"])
    # the dataset input: the file's row count named as the params name it, the training rows apart
    [used] = run.inputs.dataset_inputs
    profile = json.loads(used.dataset.profile)
    assert str(profile.get("rows")) == str(cfg.dataset.rows) == run.data.params["dataset.rows"]
    assert profile["training_rows"] == json.loads((paths.detector / "detector.json").read_text())["data"]["rows"]
    assert [c["name"] for c in json.loads(used.dataset.schema)["mlflow_colspec"]][-1] == "label"


def test_evaluation_outputs_for_dvc(project):
    _, paths = project
    metrics = json.loads((paths.reports / "metrics.json").read_text())
    assert {"f1", "precision", "recall", "roc_auc", "pr_auc", "test", "heldout_attacks"} <= set(metrics)
    assert metrics["test"]["rows"] == 20000 and metrics["test"]["outliers"] == 2000
    assert set(metrics["test"]["categories"]) <= {"dos", "probe", "r2l", "u2r", "macro", "inliers"}
    held = metrics["heldout_attacks"]
    assert held["outliers"] > 2000  # every held-out attack, not a sample
    assert set(held["categories"]) == {"dos", "probe", "r2l", "u2r", "macro", "inliers"}
    attack_cats = ("dos", "probe", "r2l", "u2r")
    assert metrics["macro_roc_auc"] == pytest.approx(np.mean([held["categories"][c]["roc_auc"] for c in attack_cats]))
    for view in (held, metrics["test"]):
        cats = {k: v for k, v in view["categories"].items() if k not in ("macro", "inliers")}
        assert sum(v["rows"] for v in cats.values()) == view["outliers"]
        assert sum(v["rows"] for v in view["recall_by_attack"].values()) == view["outliers"]
        assert sum(round(v["recall"] * v["rows"]) for v in cats.values()) == view["confusion"]["tp"]
        assert view["categories"]["inliers"]["fpr"] == pytest.approx(view["fpr"])
        # the distinct-rows view counts each row once: fewer rows, never more
        assert view["distinct"]["outliers"] <= view["outliers"] and view["distinct"]["rows"] < view["rows"]
    op = metrics["operating_point"]
    assert op["fpr_test_normals"] == metrics["test"]["fpr"]
    assert op["recall"] == {c: held["categories"][c]["recall"] for c in attack_cats}
    # the threshold pool: the threshold batch's normals and every threshold-pool attack, none of them test rows
    pool = metrics["threshold_pool"]
    assert pool["outliers"] > 500 and pool["categories"]["inliers"]["rows"] == pool["rows"] - pool["outliers"]
    curves = pd.read_csv(paths.reports / "plots" / "roc_by_category.csv")
    assert list(curves.columns) == ["fpr", *attack_cats] and curves["fpr"].is_monotonic_increasing
    assert (curves[list(attack_cats)].diff().fillna(0) >= 0).all().all()  # each ROC rises
    # the DVC confusion plot counts every test row, as metrics.json does
    conf = pd.read_csv(paths.reports / "plots" / "confusion.csv")
    c = metrics["test"]["confusion"]
    assert ((conf.actual == "normal") & (conf.predicted == "outlier")).sum() == c["fp"]
    assert ((conf.actual == "outlier") & (conf.predicted == "normal")).sum() == c["fn"]
    for name in ("roc.csv", "pr.csv", "scores.csv"):
        lines = (paths.reports / "plots" / name).read_text().splitlines()
        assert 2 < len(lines) <= 5001  # thinned for the browser
    assert len((paths.reports / "plots" / "confusion.csv").read_text().splitlines()) == 20001  # every row
    assert {p.name for p in (paths.reports / "figures").glob("*.png")} >= FIGURES


def test_the_score_histogram_draws_normal_rows_and_each_category_present(project):
    """Read back as pixels: a line in each group's colour (normal, dos, probe: the slice's held-out
    categories), and the figure at its drawn size."""
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    from kddad.figures import GROUP_COLORS

    _, paths = project
    image = imread(paths.reports / "figures" / "score_histogram.png")[..., :3]
    assert image.shape[:2] == (495, 880)
    heldout = json.loads((paths.reports / "metrics.json").read_text())["heldout_attacks"]["categories"]
    for group in ["normal", *(c for c in ("dos", "probe", "r2l", "u2r") if heldout.get(c, {}).get("rows"))]:
        near = np.abs(image - np.array(to_rgb(GROUP_COLORS[group]))).max(-1) < 0.05
        assert near.sum() > 200, f"no {group} line drawn"


def test_a_scoring_only_change_forks_a_run_carrying_the_curve(project):
    cfg, paths = project
    client = MlflowClient(f"sqlite:///{paths.root / 'mlflow.db'}")
    first = json.loads(paths.run_record.read_text())["mlflow_run_id"]
    raw = cfg.model_dump()
    raw["score"]["samples"] = 3
    changed = config.validate(raw)
    threshold(changed, paths)
    evaluate(changed, paths)
    forked = json.loads(paths.threshold.read_text())["mlflow_run_id"]
    assert forked != first
    run = client.get_run(forked)
    assert run.data.tags["forked_from"] == first and run.data.params["score.samples"] == "3"
    assert len(client.get_metric_history(forked, "vae.val_loss")) == 2
    assert "f1" in run.data.metrics
    assert client.get_run(first).data.params["score.samples"] == str(cfg.score.samples) != "3"
    # evaluate running again alone (a code change, say) is a new execution: a new run, not an overwrite
    evaluate(changed, paths)
    runs = client.search_runs([client.get_experiment_by_name("test-sqlite").experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert sum(r.data.tags.get("forked_from") == forked for r in runs) == 1


def test_relative_sqlite_uri_resolves_against_the_project_root(tmp_path, monkeypatch):
    """The folder holding dvc.yaml, from any folder below it; DVC_ROOT (queued experiments) first."""
    (tmp_path / "repo" / "outputs" / "sweeps" / "t" / "0").mkdir(parents=True)
    (tmp_path / "repo" / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path / "repo" / "outputs" / "sweeps" / "t" / "0")
    assert project_root() == tmp_path / "repo"
    assert resolve_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    assert Tracker(config.TrackingConfig()).uri == f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "real"))
    assert resolve_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'real' / 'mlflow.db'}"
    monkeypatch.delenv("DVC_ROOT")
    monkeypatch.chdir(tmp_path)  # no dvc.yaml at or above: the working folder
    assert resolve_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_uri("sqlite:///mlflow.db", tmp_path / "x") == f"sqlite:///{tmp_path / 'x' / 'mlflow.db'}"
    assert resolve_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert resolve_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not answer within 90 s")
    yield url, tmp_path
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_stages_log_to_a_real_mlflow_server(project, mlflow_server, caplog):
    url, server_dir = mlflow_server
    cfg, paths = project
    raw = cfg.model_dump()
    raw["tracking"].update(uri=url, experiment="test-server", register_as="kddad-detector")
    remote = config.validate(raw)
    train(remote, paths)
    threshold(remote, paths)
    with caplog.at_level(logging.INFO, logger="kddad.stages.evaluate"):
        evaluate(remote, paths)
    client = MlflowClient(url)
    exp_id = client.get_experiment_by_name("test-server").experiment_id
    runs = client.search_runs([exp_id])
    # the run ends with the links to the server's runs table (classic ML view) and to the run
    table = f"{url}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    assert f"MLflow: compare runs at {table}; this run: {url}/#/experiments/{exp_id}/runs/{runs[0].info.run_id}" in (
        caplog.text
    )
    assert len(runs) == 1 and runs[0].data.params["tracking.uri"] == url
    assert runs[0].data.metrics["roc_auc"] > 0.5
    assert "metrics.json" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert any((server_dir / "server-artifacts").rglob("metrics.json"))  # proxied to the server's store
    assert Tracker(remote.tracking).uri == url
    # the detector went through the server as the run's model, registered as version 1
    [version] = client.search_model_versions("name = 'kddad-detector'")
    assert version.version == "1" and version.run_id == runs[0].info.run_id
    [model] = client.search_logged_models([runs[0].info.experiment_id])
    assert model.source_run_id == runs[0].info.run_id and model.name == "detector"


def _log_dataset_at_once(uri: str, barrier) -> str:
    from kddad.config import TrackingConfig

    tracker = Tracker(TrackingConfig(uri=uri, experiment="race"))
    run = tracker.client.create_run(tracker.experiment_id()).info.run_id
    barrier.wait()
    tracker.log_dataset(run, {"name": "kddcup99", "sha256": "8045aca0d84e70e6" * 4, "file": "f.gz"}, "training")
    return run


def test_parallel_jobs_record_the_same_dataset(tmp_path):
    """joblib/SLURM jobs start together: each run gets the data set, though only one insert wins."""
    import multiprocessing

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    Tracker(config.TrackingConfig(uri=uri, experiment="race")).experiment_id()  # the store exists
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(6)
        with ctx.Pool(6) as pool:
            runs = pool.starmap(_log_dataset_at_once, [(uri, barrier)] * 6)
    client = MlflowClient(uri)
    for run in runs:
        [data] = client.get_run(run).inputs.dataset_inputs
        assert data.dataset.digest == "8045aca0d84e70e6"
