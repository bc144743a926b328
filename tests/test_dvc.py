"""A real `dvc repro` / `dvc exp run` in a temporary copy of the repo (2 training epochs)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, copy_repo, use_preset

pytestmark = pytest.mark.slow
STAGES = ("download", "split", "encode", "train", "threshold", "evaluate")
MODEL = {"train", "threshold", "evaluate"}


def _run(cmd: list[str], cwd: Path, env: dict, stdout_only: bool = False) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out}"
    return proc.stdout if stdout_only else out


def _ran(out: str) -> set[str]:
    return {s for s in STAGES if f"Running stage '{s}'" in out}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mirror):
    """A fresh clone-like copy of the repo, trained for 2 epochs (params.yaml recomposed)."""
    dst = tmp_path_factory.mktemp("repo")
    env = copy_repo(dst, mirror)
    use_preset(dst, "debug", "quick")  # 2 epochs, 2 samples: for `dvc exp run` compositions too
    _run(["git", "commit", "-qam", "quick"], dst, env)
    return dst, env


def test_repro_runs_every_stage_once(repo):
    path, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    assert _ran(_run([*dvc, "repro"], path, env)) == set(STAGES)
    report = json.loads((path / "reports/split.json").read_text())
    overlap = report["identical_to_train"]["on_all41"]
    assert set(overlap) == {"val", "threshold", "test", "attacks", "threshold_attacks"} and set(overlap.values()) == {0}
    assert (path / "models/encoder/encoder.json").is_file()
    assert (path / "data/features/test.npy").is_file()
    thr = json.loads((path / "models/threshold.json").read_text())
    assert thr["method"] == "percentile" and thr["rows"] == 10000 and thr["flagged"] == 500
    assert (path / "models/detector/network.pt").is_file()
    assert len((path / "reports/train_curve.csv").read_text().splitlines()) == 3  # header + 2 epochs
    shown = json.loads(_run([*dvc, "metrics", "show", "--json"], path, env, stdout_only=True))
    assert "f1" in json.dumps(shown) and "roc_auc" in json.dumps(shown)
    _run([*dvc, "plots", "show", "-o", "dvc_plots"], path, env)
    html = (path / "dvc_plots" / "index.html").read_text()
    assert "roc.csv" in html and "confusion_matrix.png" in html and "train_curve.csv" in html
    assert "ROC per attack category" in html and "roc_by_category.png" in html
    second = _run([*dvc, "repro"], path, env)
    assert _ran(second) == set() and "up to date" in second
    assert list(path.rglob("mlflow.db")) == [path / "mlflow.db"]  # the one store, at the root
    _run(["git", "add", "-A"], path, env)
    _run(["git", "commit", "-qm", "lock"], path, env)


@pytest.mark.parametrize("module", ["paths.py", "figures.py", "data/read.py", "models/networks.py", "sweep.py"])
def test_a_changed_module_invalidates_every_stage_whose_driver_imports_it(repo, module):
    from test_dvc_deps import kddad_files

    path, env = repo
    source = path / "src" / "kddad" / module
    expected = {s for s in STAGES if (ROOT / "src" / "kddad" / module) in kddad_files(ROOT / "pipelines" / f"{s}.py")}
    original = source.read_text()
    try:
        source.write_text(original + "# a comment\n")
        status = json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], path, env, stdout_only=True))
    finally:
        source.write_text(original)
    assert set(status) == expected
    assert json.loads(_run([sys.executable, "-m", "dvc", "status", "--json"], path, env, stdout_only=True)) == {}


def test_exp_run_reruns_only_what_depends_on_the_change(repo):
    path, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    assert _ran(_run([*dvc, "exp", "run", "-S", "split.dedupe=true"], path, env)) == {"split", "encode", *MODEL}
    assert json.loads((path / "reports/split.json").read_text())["duplicates_dropped"] == 494021 - 145586
    # Hydra composition: a group override rewrites params.yaml; the data stages before encode stay
    assert _ran(_run([*dvc, "exp", "run", "-S", "features=alibi18"], path, env)) == {"encode", *MODEL}
    meta = json.loads((path / "data/features/meta.json").read_text())
    assert len(meta["feature_names"]) == 18
    # model and score settings touch none of the data stages; a scoring-only one re-runs threshold only
    assert _ran(_run([*dvc, "exp", "run", "-S", "score.samples=3"], path, env)) == {"threshold", "evaluate"}
    assert json.loads((path / "models/threshold.json").read_text())["score"]["samples"] == 3
    # a model and score change re-runs the model stages only; a scikit-learn baseline runs through the
    # same stages (no training curve: plots still render). model=ae goes through DVC in test_dvc_queue.py
    assert _ran(_run([*dvc, "exp", "run", "-S", "model=iforest", "-S", "score=mse"], path, env)) == MODEL
    assert json.loads((path / "models/threshold.json").read_text())["score"]["name"] == "mse"
    assert (path / "models/detector/baseline.skops").is_file()
    plots = json.loads(_run([*dvc, "plots", "show", "--json"], path, env, stdout_only=True))
    assert not plots.get("errors") and "reports/plots/roc.csv" in str(plots["data"])
    # every pipeline execution is one run in the same store at the repo root, tagged with its experiment
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("kddad").experiment_id])
    assert len(runs) == 5  # repro, then four experiments (the scoring-only one forks a run)
    assert sum("dvc_experiment" in r.data.tags for r in runs) == 4
    assert all("f1" in r.data.metrics and r.info.status == "FINISHED" for r in runs)
    history = set(_run(["git", "log", "--format=%H"], path, env, stdout_only=True).split())
    assert all(r.data.tags["mlflow.source.git.commit"] in history for r in runs)  # the commit each ran at
    assert {r.data.tags["git_dirty"] for r in runs} <= {"true", "false"}
    shown = json.loads(_run([*dvc, "exp", "show", "--json"], path, env, stdout_only=True))
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    dropped = sorted(
        run["data"]["metrics"]["reports/split.json"]["data"]["duplicates_dropped"] for e in exps for run in e["revs"]
    )
    f1s = [run["data"]["metrics"]["reports/metrics.json"]["data"]["f1"] for e in exps for run in e["revs"]]
    assert len(f1s) == 4 and all(0 <= f <= 1 for f in f1s)  # a comparable row per experiment
    assert dropped == [0] * (len(dropped) - 1) + [494021 - 145586]  # only the dedupe experiment


def test_exp_run_nslkdd_runs_the_official_protocol_end_to_end(repo):
    """`dvc exp run -S dataset=nslkdd` from a fresh clone: KDDTrain+ trains, all of KDDTest+ tests."""
    path, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    assert _ran(_run([*dvc, "exp", "run", "-S", "dataset=nslkdd"], path, env)) == set(STAGES)
    assert {p.name for p in (path / "data/raw").iterdir()} == {"KDDTrain+_20Percent.txt", "KDDTest+.txt"}
    split = json.loads((path / "reports/split.json").read_text())
    assert split["protocol"] == "test_file" and split["rows"]["test"] == 22544 and split["rows_in"] == 25192
    m = json.loads((path / "reports/metrics.json").read_text())
    assert m["test"]["rows"] == 22544 and m["test"]["outliers"] == 12833
    assert set(m["test"]["categories"]) == {"dos", "probe", "r2l", "u2r", "macro", "inliers"}
    assert m["test"]["categories"]["u2r"]["rows"] == 67 and 0.5 < m["roc_auc"] <= 1
    hard = m["test_difficulty_below_21"]
    assert hard["rows"] == 11850 and hard["outliers"] + hard["categories"]["inliers"]["rows"] == 11850
    # attack types never seen in training are reported by name
    assert {"mscan", "apache2", "snmpguess"} <= set(m["test"]["recall_by_attack"])
    plots = json.loads(_run([*dvc, "plots", "show", "--json"], path, env, stdout_only=True))
    assert not plots.get("errors") and "ROC per attack category" in plots["data"]
    curves = json.dumps(plots["data"]["ROC per attack category"])
    assert all(f'"{c}"' in curves for c in ("dos", "probe", "r2l", "u2r"))
