"""`dvc exp run --queue` in a fresh copy of the repo (the quick preset, a slice of the real file):
queued experiments land in the one MLflow store."""

import json
import time

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def test_queued_experiments_land_in_the_same_mlflow_store(sliced_repo):
    """`dvc exp run --queue` runs each experiment in a temporary copy; DVC_ROOT leads it home."""
    repo = sliced_repo
    path = repo.path
    repo.dvc("exp", "run", "--queue", "-S", "model=ae,alibi_vae", "-S", "early_stopping.patience=1")
    repo.dvc("queue", "start")
    deadline = time.time() + 480
    while time.time() < deadline:
        status = repo.dvc("queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert status.count("Success") == 2, status
    assert list(path.rglob("mlflow.db")) == [path / "mlflow.db"]  # not in the temporary copies
    client = MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    new = client.search_runs([client.get_experiment_by_name("kddad").experiment_id])
    assert len(new) == 2 and all(r.info.status == "FINISHED" and "f1" in r.data.metrics for r in new)
    assert {r.data.tags["architecture"] for r in new} == {"ae 64-32 z8", "vae 20-15-7 z2"}
    assert all(r.data.tags.get("dvc_experiment") for r in new)
    # artifacts in the project's mlartifacts/ (relative to it in the store), not in the temporary copies
    assert all((path / r.info.artifact_uri / "metrics.json").is_file() for r in new)
    # `dvc exp show` lists both, each with the F1 its MLflow run holds
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    rows = {
        run.get("name") or e.get("name"): run
        for rev in shown
        for e in (rev.get("experiments") or [])
        for run in e["revs"]
    }
    for r in new:
        f1 = rows[r.data.tags["dvc_experiment"]]["data"]["metrics"]["reports/metrics.json"]["data"]["f1"]
        assert f1 == pytest.approx(r.data.metrics["f1"])
