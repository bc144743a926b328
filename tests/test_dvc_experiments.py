"""`dvc exp run` in a fresh copy of the repo (the quick preset: 2 training epochs): what re-runs after
which change, on a slice of the real file; NSL-KDD's official protocol end to end."""

import json

import pytest
from helpers.project import MODEL_STAGES as MODEL
from helpers.project import STAGES, stages_ran

from kddad.data import fields
from kddad.data.read import read_kdd

pytestmark = pytest.mark.slow


def test_exp_run_reruns_only_what_depends_on_the_change(sliced_repo, kdd_slice):
    """On a slice of the real file (the full file's counts: tests/test_split.py)."""
    repo = sliced_repo
    path = repo.path
    assert stages_ran(repo.dvc("repro")) == set(STAGES)
    repo.commit("lock")
    assert stages_ran(repo.dvc("exp", "run", "-S", "split.dedupe=true")) == {"split", "encode", *MODEL}
    rows = read_kdd(kdd_slice)
    repeats = len(rows) - len(rows.drop_duplicates(subset=[*fields.FEATURES, fields.LABEL]))
    assert repeats > 0
    assert json.loads((path / "reports/split.json").read_text())["duplicates_dropped"] == repeats
    # Hydra composition: a group override rewrites params.yaml; the data stages before encode stay
    assert stages_ran(repo.dvc("exp", "run", "-S", "features=alibi18")) == {"encode", *MODEL}
    meta = json.loads((path / "data/features/meta.json").read_text())
    assert len(meta["feature_names"]) == 18
    # model and score settings touch none of the data stages; a scoring-only one re-runs threshold only
    assert stages_ran(repo.dvc("exp", "run", "-S", "score.samples=3")) == {"threshold", "evaluate"}
    assert json.loads((path / "models/threshold.json").read_text())["score"]["samples"] == 3
    # a model and score change re-runs the model stages only; a scikit-learn baseline runs through the
    # same stages (no training curve: plots still render). model=ae goes through DVC in test_dvc_queue.py
    assert stages_ran(repo.dvc("exp", "run", "-S", "model=iforest", "-S", "score=mse")) == MODEL
    assert json.loads((path / "models/threshold.json").read_text())["score"]["name"] == "mse"
    assert (path / "models/detector/baseline.skops").is_file()
    plots = json.loads(repo.dvc("plots", "show", "--json").stdout)
    assert not plots.get("errors") and "reports/plots/roc.csv" in str(plots["data"])
    # every pipeline execution is one run in the same store at the repo root, tagged with its experiment
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("kddad").experiment_id])
    assert len(runs) == 5  # repro, then four experiments (the scoring-only one forks a run)
    assert sum("dvc_experiment" in r.data.tags for r in runs) == 4
    assert all("f1" in r.data.metrics and r.info.status == "FINISHED" for r in runs)
    # each named for what it changes against the committed params.yaml (what its `-S` set; a group as
    # it was chosen, not its expanded column lists), then what it is; the repro's says it changes nothing
    runs = sorted(runs, key=lambda r: r.info.start_time)
    names = [r.info.run_name for r in runs]
    assert len(set(names)) == len(names), names

    def identity(r) -> str:
        return f"{r.data.tags['features']} {r.data.tags['architecture']} {r.data.tags['score']}"

    assert names[0] == f"defaults · {identity(runs[0])}" and "params_changed" not in runs[0].data.tags
    base = runs[0].data.params
    led = ["split.dedupe=true", "features=alibi18", "score.samples=3", "model=iforest score=mse"]
    for r, lead in zip(runs[1:], led, strict=True):
        assert r.info.run_name == f"{lead} · {identity(r)}"
        changed = r.data.tags["params_changed"].split(" ")  # every key, in full
        assert {c.split("=")[0] for c in changed} == {k for k, v in r.data.params.items() if base.get(k) != v}
    history = set(repo.run(["git", "log", "--format=%H"]).stdout.split())
    assert all(r.data.tags["mlflow.source.git.commit"] in history for r in runs)  # the commit each ran at
    assert {r.data.tags["git_dirty"] for r in runs} <= {"true", "false"}
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    dropped = sorted(
        run["data"]["metrics"]["reports/split.json"]["data"]["duplicates_dropped"] for e in exps for run in e["revs"]
    )
    f1s = [run["data"]["metrics"]["reports/metrics.json"]["data"]["f1"] for e in exps for run in e["revs"]]
    assert len(f1s) == 4 and all(0 <= f <= 1 for f in f1s)  # a comparable row per experiment
    assert dropped == [0] * (len(dropped) - 1) + [repeats]  # only the dedupe experiment


def test_exp_run_nslkdd_runs_the_official_protocol_end_to_end(repo):
    """`dvc exp run -S dataset=nslkdd` from a fresh clone: KDDTrain+ trains, all of KDDTest+ tests."""
    path = repo.path
    assert stages_ran(repo.dvc("exp", "run", "-S", "dataset=nslkdd")) == set(STAGES)
    assert {p.name for p in (path / "data/raw").iterdir()} == {"KDDTrain+.txt", "KDDTest+.txt"}
    split = json.loads((path / "reports/split.json").read_text())
    assert split["protocol"] == "test_file" and split["rows"]["test"] == 22544 and split["rows_in"] == 125973
    m = json.loads((path / "reports/metrics.json").read_text())
    assert m["test"]["rows"] == 22544 and m["test"]["outliers"] == 12833
    assert set(m["test"]["categories"]) == {"dos", "probe", "r2l", "u2r", "macro", "inliers"}
    assert m["test"]["categories"]["u2r"]["rows"] == 67 and 0.5 < m["roc_auc"] <= 1
    hard = m["test_difficulty_below_21"]
    assert hard["rows"] == 11850 and hard["outliers"] + hard["categories"]["inliers"]["rows"] == 11850
    # attack types never seen in training are reported by name
    assert {"mscan", "apache2", "snmpguess"} <= set(m["test"]["recall_by_attack"])
    plots = json.loads(repo.dvc("plots", "show", "--json").stdout)
    assert not plots.get("errors") and "ROC per attack category" in plots["data"]
    curves = json.dumps(plots["data"]["ROC per attack category"])
    assert all(f'"{c}"' in curves for c in ("dos", "probe", "r2l", "u2r"))
