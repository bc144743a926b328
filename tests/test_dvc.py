"""The README's `dvc repro` on the real file in a fresh copy of the repo (the quick preset: 2 training
epochs), run once by the ``pipeline`` fixture; the experiments' mechanics: tests/test_dvc_experiments.py."""

import json

import pytest
from helpers.imports import kddad_files
from helpers.project import STAGES, stages_ran
from helpers.repo import ROOT
from helpers.run import output

pytestmark = pytest.mark.slow


def test_repro_runs_every_stage_once(pipeline):
    """The README's `dvc repro`, as written, run once by the ``pipeline`` fixture."""
    repo, repro = pipeline
    path = repo.path
    assert {s for s in STAGES if f"Running stage '{s}'" in repro} == set(STAGES)
    # it ends with where to compare runs: mlflow ui over the project's store, on the runs table
    ui = f"(after `mlflow ui --backend-store-uri sqlite:///{path.resolve() / 'mlflow.db'}`)"
    assert (
        "MLflow: compare runs at http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning " + ui
        in repro
    )
    report = json.loads((path / "reports/split.json").read_text())
    overlap = report["identical_to_train"]["on_all41"]
    assert set(overlap) == {"val", "threshold", "test", "attacks", "threshold_attacks"} and set(overlap.values()) == {0}
    assert (path / "models/encoder/encoder.json").is_file()
    assert (path / "data/features/test.npy").is_file()
    thr = json.loads((path / "models/threshold.json").read_text())
    assert thr["method"] == "percentile" and thr["rows"] == 10000 and thr["flagged"] == 500
    assert {p.name for p in (path / "models/detector/members").iterdir()} == {"vae", "neutral"}
    assert (path / "models/detector/members/vae/network.pt").is_file()
    assert len((path / "reports/train_curve.csv").read_text().splitlines()) == 5  # header + 2 epochs a member
    shown = json.loads(repo.dvc("metrics", "show", "--json").stdout)
    assert "f1" in json.dumps(shown) and "roc_auc" in json.dumps(shown)
    repo.dvc("plots", "show", "-o", "dvc_plots")
    html = (path / "dvc_plots" / "index.html").read_text()
    assert "roc.csv" in html and "confusion_matrix.png" in html and "train_curve.csv" in html
    assert "ROC per attack category" in html and "roc_by_category.png" in html
    second = repo.dvc("repro")
    assert stages_ran(second) == set() and "up to date" in output(second)
    assert list(path.rglob("mlflow.db")) == [path / "mlflow.db"]  # the one store, at the root


@pytest.mark.parametrize("module", ["paths.py", "figures.py", "data/read.py", "models/networks.py", "sweep.py"])
def test_a_changed_module_invalidates_every_stage_whose_driver_imports_it(pipeline, module):
    repo, _ = pipeline
    source = repo.path / "src" / "kddad" / module
    expected = {s for s in STAGES if (ROOT / "src" / "kddad" / module) in kddad_files(ROOT / "pipelines" / f"{s}.py")}
    original = source.read_text()
    try:
        source.write_text(original + "# a comment\n")
        status = json.loads(repo.dvc("status", "--json").stdout)
    finally:
        source.write_text(original)
    assert set(status) == expected
    assert json.loads(repo.dvc("status", "--json").stdout) == {}
