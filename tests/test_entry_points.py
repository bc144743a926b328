"""The README's experiment commands exactly as written, in a fresh copy of the repo with its defaults
(relative tracking URI, default output and sweep folders, default data cache): every run lands in
the repository's one mlflow.db. (`dvc repro` as written: tests/test_dvc.py.)"""

import shlex

import pytest
from helpers.repo import ROOT, Repo
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

SINGLE = "python pipelines/experiment.py model=ae trainer.max_epochs=5"
SWEEP = "python pipelines/experiment.py -m model=ae,vae trainer.max_epochs=1"
JOBLIB = (
    "python pipelines/experiment.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 model=ae,vae trainer.max_epochs=1"
)
SUMMARY = {"summary/summary.md", "summary/summary.csv", "summary/jobs.csv", "summary/summary.png"}


@pytest.mark.parametrize("command", [SINGLE, SWEEP, JOBLIB])
def test_the_readme_shows_these_commands(command):
    assert command in (ROOT / "README.md").read_text()


def _store(repo: Repo) -> MlflowClient:
    path = repo.path
    assert list(path.rglob("mlflow.db")) == [path / "mlflow.db"], "runs went to more than one store"
    return MlflowClient(f"sqlite:///{path / 'mlflow.db'}")


def _sweep(client: MlflowClient, sweep_id: str):
    exp = client.get_experiment_by_name("kddad").experiment_id
    [parent] = [
        r for r in client.search_runs([exp], f"tags.sweep_id = '{sweep_id}'") if "mlflow.parentRunId" not in r.data.tags
    ]
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return parent, children


def _check_sweep(client: MlflowClient, sweep_dir):
    parent, children = _sweep(client, sweep_dir.name)
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.params["model.name"] for r in children) == ["ae", "vae"]
    # each child named by its overrides, described by its command, from the driver as run
    assert sorted(r.info.run_name for r in children) == [
        "model=ae trainer.max_epochs=1",
        "model=vae trainer.max_epochs=1",
    ]
    for r in children:
        assert r.data.tags["mlflow.source.name"] == "pipelines/experiment.py"
        assert f"Overrides: `{r.info.run_name}`" in r.data.tags["mlflow.note.content"]
    assert all(r.info.status == "FINISHED" and "f1" in r.data.metrics for r in children)
    assert SUMMARY <= {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    md = (sweep_dir / "summary" / "summary.md").read_text()
    assert md.count("model=") == 3  # the best configuration, then a table row each
    assert "±" not in md and "One run a configuration" in md  # one seed: nothing averaged
    from matplotlib.image import imread

    chart = imread(sweep_dir / "summary" / "summary.png")
    assert chart.shape[1] == 4 * 4 * 110  # a panel per headline metric: F1, ROC-AUC, macro, R2L
    assert client.get_run(parent.info.run_id).data.metrics["configurations"] == 2


def test_single_run(clone):
    path = clone.path
    clone.run(SINGLE, timeout=900)
    [out] = list((path / "outputs" / "runs").iterdir())
    assert (out / "models" / "detector" / "detector.json").is_file() and (out / "reports" / "metrics.json").is_file()
    client = _store(clone)
    [run] = client.search_runs([client.get_experiment_by_name("kddad").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "ae" and "f1" in run.data.metrics
    assert run.info.artifact_uri.startswith((path / "mlartifacts").as_uri())


def test_sweep_with_the_basic_launcher(clone):
    clone.run(SWEEP, timeout=900)
    [sweep_dir] = list((clone.path / "outputs" / "sweeps").iterdir())
    _check_sweep(_store(clone), sweep_dir)


def test_sweep_with_joblib_into_an_absolute_sweep_folder(clone, tmp_path):
    clone.run([*shlex.split(JOBLIB), f"hydra.sweep.dir={tmp_path / 'sweep'}"], timeout=900)
    _check_sweep(_store(clone), tmp_path / "sweep")
    assert not list(tmp_path.rglob("mlflow.db"))
