"""The README's experiment commands exactly as written, in a fresh copy of the repo with its defaults
(relative tracking URI, default output and sweep folders, default data cache): every run lands in
the repository's one mlflow.db. (`dvc repro` as written: tests/test_dvc.py.)"""

import shlex
import subprocess

import pytest
from conftest import ROOT, copy_repo
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

SINGLE = "python pipelines/experiment.py model=ae trainer.max_epochs=5"
SWEEP = "python pipelines/experiment.py -m model=ae,vae trainer.max_epochs=1"
JOBLIB = (
    "python pipelines/experiment.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 model=ae,vae trainer.max_epochs=1"
)
SUMMARY = {"summary/summary.md", "summary/summary.csv", "summary/jobs.csv", "summary/summary.png"}


def test_the_readme_shows_these_commands():
    readme = (ROOT / "README.md").read_text()
    for command in (SINGLE, SWEEP, JOBLIB):
        assert command in readme, command


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mirror):
    path = tmp_path_factory.mktemp("clone")
    return path, copy_repo(path, mirror)


def _run(repo, command: str, *extra: str) -> subprocess.CompletedProcess:
    path, env = repo
    proc = subprocess.run(
        [*shlex.split(command), *extra], cwd=path, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _store(repo) -> MlflowClient:
    path, _ = repo
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
    assert all(r.info.status == "FINISHED" and "f1" in r.data.metrics for r in children)
    assert SUMMARY <= {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    assert (sweep_dir / "summary" / "summary.md").read_text().count("model=") == 2
    assert client.get_run(parent.info.run_id).data.metrics["configurations"] == 2


def test_single_run(repo):
    path, _ = repo
    _run(repo, SINGLE)
    [out] = list((path / "outputs" / "runs").iterdir())
    assert (out / "models" / "detector" / "detector.json").is_file() and (out / "reports" / "metrics.json").is_file()
    client = _store(repo)
    [run] = client.search_runs([client.get_experiment_by_name("kddad").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "ae" and "f1" in run.data.metrics
    assert run.info.artifact_uri.startswith((path / "mlartifacts").as_uri())


def test_sweep_with_the_basic_launcher(repo):
    path, _ = repo
    _run(repo, SWEEP)
    [sweep_dir] = list((path / "outputs" / "sweeps").iterdir())
    _check_sweep(_store(repo), sweep_dir)


def test_sweep_with_joblib_into_an_absolute_sweep_folder(repo, tmp_path):
    _run(repo, JOBLIB, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    _check_sweep(_store(repo), tmp_path / "sweep")
    assert not list(tmp_path.rglob("mlflow.db"))
