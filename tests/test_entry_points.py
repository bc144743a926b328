"""The README's experiment commands exactly as written, in a fresh copy of the repo with its defaults
(relative tracking URI, default output and sweep folders, default data cache): every run lands in
the repository's one mlflow.db. (`dvc repro` as written: tests/test_dvc.py; the basic launcher's 2-job
sweep, then looked at in MLflow's UI: tests/test_mlflow_ui.py.)"""

import shlex

import pytest
from helpers.repo import ROOT, Repo
from helpers.sweeps import SWEEP, check_sweep
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

SINGLE = "python pipelines/experiment.py model=ae trainer.max_epochs=5"
JOBLIB = (
    "python pipelines/experiment.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 model=ae,vae trainer.max_epochs=1"
)


@pytest.mark.parametrize("command", [SINGLE, SWEEP, JOBLIB])
def test_the_readme_shows_these_commands(command):
    assert command in (ROOT / "README.md").read_text()


def _store(repo: Repo) -> MlflowClient:
    path = repo.path
    assert list(path.rglob("mlflow.db")) == [path / "mlflow.db"], "runs went to more than one store"
    return MlflowClient(f"sqlite:///{path / 'mlflow.db'}")


def test_single_run(clone):
    path = clone.path
    clone.run(SINGLE, timeout=900)
    [out] = list((path / "outputs" / "runs").iterdir())
    assert (out / "models" / "detector" / "detector.json").is_file() and (out / "reports" / "metrics.json").is_file()
    client = _store(clone)
    [run] = client.search_runs([client.get_experiment_by_name("kddad").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "ae" and "f1" in run.data.metrics
    assert run.info.artifact_uri.startswith("mlartifacts/")  # relative to the project: it can move


def test_sweep_with_joblib_into_an_absolute_sweep_folder(clone, tmp_path):
    clone.run([*shlex.split(JOBLIB), f"hydra.sweep.dir={tmp_path / 'sweep'}"], timeout=900)
    check_sweep(_store(clone), tmp_path / "sweep", clone.path)
    assert not list(tmp_path.rglob("mlflow.db"))
