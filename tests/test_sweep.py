"""Real Hydra multirun sweeps of pipelines/experiment.py on a slice of the real file, checked in a real
SQLite MLflow store."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from helpers.data import slice_overrides
from helpers.repo import ROOT
from helpers.run import run
from helpers.tracked import at
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One data cache for the module's sweeps: each prepares the (same) data once, not once per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def sweep(tmp_path, mirror, cache, kdd_slice):
    """A sweep of pipelines/experiment.py on a slice of the real file: its store, parent, children, process."""
    return lambda *overrides: _sweep(tmp_path, mirror, cache, kdd_slice, *overrides)


def _sweep(tmp_path, mirror, cache, data_file, *overrides):
    env = {**os.environ, "KDDAD_DATA_MIRROR": str(mirror), "KDDAD_CACHE": str(cache)}
    cmd = [
        sys.executable,
        ROOT / "pipelines" / "experiment.py",
        "-m",
        *overrides,
        *slice_overrides(data_file),
        "debug=quick",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    proc = run(cmd, ROOT, env, timeout=900)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("kddad").experiment_id
    parents = client.search_runs([exp], "tags.sweep_id != ''", max_results=100)
    parents = [r for r in parents if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100)
    return client, parent, children, proc


def test_basic_sweep_nests_jobs_summarises_and_survives_failures(tmp_path, cache, sweep):
    client, parent, children, proc = sweep("model=ae,vae", "seed=0,1", "split.threshold.n=10000,900000")
    assert len(children) == 8
    failed = [r for r in children if r.info.status == "FAILED"]
    done = [r for r in children if r.info.status == "FINISHED"]
    assert len(failed) == 4 and len(done) == 4
    assert all("split.threshold.n=900000" in r.data.tags["overrides"] for r in failed)
    assert all("needs" in r.data.tags["error"] and "split.threshold.n" in r.data.tags["error"] for r in failed)
    assert all("f1" in r.data.metrics and r.data.tags["sweep_id"] == parent.data.tags["sweep_id"] for r in done)
    # the data were prepared once for the working configuration, reused by its 4 jobs
    assert len([p for p in cache.iterdir() if (p / "DONE.json").is_file()]) == 1
    summary = (tmp_path / "sweep" / "summary" / "summary.csv").read_text().splitlines()
    assert len(summary) == 3  # header + 2 configurations (ae, vae) grouped over 2 seeds
    assert summary[1].split(",")[0].startswith("model=") and summary[1].endswith(",2,0")
    md = (tmp_path / "sweep" / "summary" / "summary.md").read_text()
    assert "± " in md and "4 failed job(s)" in md
    # the per-category macro columns, from each job's held-out attacks and threshold pool
    import pandas as pd

    table = pd.read_csv(tmp_path / "sweep" / "summary" / "summary.csv", index_col=0)
    for col in ("macro_roc_auc_mean", "macro_recall_mean", "threshold_pool.macro_roc_auc_mean"):
        assert table[col].between(0, 1).all(), col
    header = next(line for line in md.splitlines() if line.startswith("| configuration"))
    assert "| macro_roc_auc |" in header and "| threshold_pool.macro_roc_auc |" in header
    assert md.startswith("Best by threshold_batch.roc_auc (labelled data off the test split): model=")
    assert client.get_run(parent.info.run_id).data.tags["best_by"] == "threshold_batch.roc_auc"
    with at(tmp_path):  # the store's artifact locations are relative to its folder
        arts = {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert {"summary/summary.md", "summary/summary.csv", "summary/jobs.csv", "summary/summary.png"} <= arts
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_joblib_launcher_runs_jobs_in_parallel(tmp_path, sweep):
    _, parent, children, _ = sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=ae,vae")
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    a, b = sorted(children, key=lambda r: r.info.start_time)
    assert b.info.start_time < a.info.end_time  # the second started before the first ended
    assert json.loads((tmp_path / "sweep" / "mlflow_parent.json").read_text())["run_id"] == parent.info.run_id


def test_submitit_local_launcher_runs_jobs_as_separate_processes(tmp_path, sweep):
    _, parent, children, _ = sweep(
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=15",
        "seed=0,1",
    )
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["overrides"].split("seed=")[1].split()[0] for r in children} == {"0", "1"}
    # submitit's own records of the two jobs (its local executor, the stand-in for SLURM)
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 2


def test_optuna_search_tunes_on_the_threshold_batch_and_records_every_trial(tmp_path, sweep):
    client, parent, children, _ = sweep(
        "hparams_search=vae_optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "early_stopping.patience=0",
    )
    assert len(children) == 3 and all(r.info.status == "FINISHED" for r in children)
    # each trial drew its own point of the search space, and ran with it
    assert len({r.data.params["model.lr"] for r in children}) == 3
    assert {r.data.params["model.hidden"] for r in children} <= {"[32, 16]", "[64, 32]", "[128, 64]", "[128, 64, 32]"}
    assert all(0.0001 <= float(r.data.params["model.lr"]) <= 0.01 for r in children)
    # the study's best is the best objective (threshold batch ROC-AUC), never a test figure
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    objective = {r.data.params["model.lr"]: r.data.metrics["threshold_batch.roc_auc"] for r in children}
    assert results["best_value"] == pytest.approx(max(objective.values()))
    assert float(results["best_params"]["model.lr"]) == pytest.approx(
        float(max(objective, key=objective.get)), rel=1e-6
    )
    best = client.get_run(parent.info.run_id)
    assert best.data.metrics["sweep.best.threshold_batch.roc_auc"] == pytest.approx(max(objective.values()))


def test_ray_cluster_launcher_runs_jobs_on_a_cluster_started_elsewhere(tmp_path, mirror, kdd_slice, ray_cluster):
    """The sweep is launched from its own folder with relative paths (sweep folder, cache, data
    file); the cluster's workers run in another folder and still find all of them."""
    here = tmp_path / "project"
    here.mkdir()
    shutil.copy(kdd_slice, here / "slice.gz")
    env = {**os.environ, "KDDAD_DATA_MIRROR": str(mirror), "KDDAD_CACHE": "cache", "RAY_ADDRESS": "auto"}
    cmd = [
        sys.executable,
        ROOT / "pipelines" / "experiment.py",
        "-m",
        "hydra/launcher=ray_cluster",
        "model=ae,vae",
        *slice_overrides(Path("slice.gz")),
        "debug=quick",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        f"tracking.uri=sqlite:///{here / 'mlflow.db'}",
        "hydra.sweep.dir=sweep",
    ]
    proc = run(cmd, here, env, timeout=900)
    client = MlflowClient(f"sqlite:///{here / 'mlflow.db'}")
    exp = client.get_experiment_by_name("kddad").experiment_id
    runs = client.search_runs([exp], max_results=100)
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and all(r.info.status == "FINISHED" and "f1" in r.data.metrics for r in children)
    # the jobs ran in Ray worker processes (Ray prefixes their output with the worker's pid)
    assert proc.stdout.count("(_run_job pid=") + proc.stderr.count("(_run_job pid=") >= 2
    assert (here / "sweep" / "summary" / "summary.md").is_file()
    assert sorted(p.name for p in (here / "sweep").iterdir() if p.name.isdigit()) == ["0", "1"]  # job folders
    assert (here / "cache").is_dir()
    assert not any(p.name in ("sweep", "cache", "mlflow.db", "outputs") for p in ray_cluster.iterdir())


def test_a_search_on_a_protocol_whose_threshold_batch_is_the_test_set_is_refused(tmp_path, mirror):
    cmd = [
        sys.executable,
        ROOT / "pipelines" / "experiment.py",
        "-m",
        "hparams_search=vae_optuna",
        "split=dagmm",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    env = {**os.environ, "KDDAD_DATA_MIRROR": str(mirror), "KDDAD_CACHE": str(tmp_path / "cache")}
    proc = run(cmd, ROOT, env, code=None, timeout=300)
    assert proc.returncode != 0
    assert "split.protocol=dagmm: its threshold batch is the test set" in proc.stderr + proc.stdout
    assert not (tmp_path / "cache").exists()  # refused before any job prepared data
