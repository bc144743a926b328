"""A sweep as the README runs it, and what its MLflow runs and summary must hold."""

from pathlib import Path

from mlflow.tracking import MlflowClient

from helpers.tracked import at

#: The README's 2-job sweep (the basic launcher)
SWEEP = "python pipelines/experiment.py -m model=ae,vae trainer.max_epochs=1"
SUMMARY = {"summary/summary.md", "summary/summary.csv", "summary/jobs.csv", "summary/summary.png"}


def sweep_runs(client: MlflowClient, sweep_id: str):
    """The parent run of sweep ``sweep_id`` and its child runs."""
    exp = client.get_experiment_by_name("kddad").experiment_id
    [parent] = [
        r for r in client.search_runs([exp], f"tags.sweep_id = '{sweep_id}'") if "mlflow.parentRunId" not in r.data.tags
    ]
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return parent, children


def check_sweep(client: MlflowClient, sweep_dir: Path, root: Path) -> None:
    """The README's 2-job sweep in ``sweep_dir`` as its MLflow runs and summary must show it (``root``:
    the project, which its store's artifact locations are relative to)."""
    parent, children = sweep_runs(client, sweep_dir.name)
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
    with at(root):
        assert SUMMARY <= {a.path for a in client.list_artifacts(parent.info.run_id, "summary")}
    md = (sweep_dir / "summary" / "summary.md").read_text()
    assert md.count("model=") == 3  # the best configuration, then a table row each
    assert "±" not in md and "One run a configuration" in md  # one seed: nothing averaged
    from matplotlib.image import imread

    chart = imread(sweep_dir / "summary" / "summary.png")
    assert chart.shape[1] == 4 * 4 * 110  # a panel per headline metric: F1, ROC-AUC, macro, R2L
    assert client.get_run(parent.info.run_id).data.metrics["sweep.configurations"] == 2
