"""`kddad score` / `kddad info` and the served MLflow model, on a detector trained by the README's
`dvc repro` (the quick preset: 2 epochs) in a fresh copy of the repo (the `pipeline` fixture), as a
user runs them after `make run`."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.data import KDD10, write_head
from helpers.net import free_port, wait_until_answers
from helpers.repo import ROOT
from helpers.scores import assert_same_scores, expected_scores
from helpers.tracked import where_each_went
from mlflow import MlflowClient

from kddad.cli import main
from kddad.data import fields
from kddad.data.read import read_kdd
from kddad.detector import Detector

pytestmark = pytest.mark.slow
#: The README's command, exactly as written there.
SCORE = "kddad score --model models/detector --input data/raw/kddcup.data_10_percent.gz --output scores.csv"
INFO = "kddad info --model models/detector"


@pytest.fixture(scope="module")
def detector(pipeline) -> Detector:
    repo, _ = pipeline
    return Detector.load(repo.path / "models" / "detector", threshold=repo.path / "models" / "threshold.json")


def test_the_readme_shows_these_commands():
    readme = (ROOT / "README.md").read_text()
    assert SCORE in readme and INFO in readme


def test_readme_command_scores_the_raw_file_row_for_row(pipeline, detector, mirror):
    repo, _ = pipeline
    path = repo.path
    proc = repo.run(SCORE)
    summary = proc.stdout.strip().splitlines()[-1]
    got = pd.read_csv(path / "scores.csv")
    assert list(got.columns) == [
        "row",
        "instance_score",
        "is_outlier",
        *[f"{c}_{i}" for i in (1, 2, 3) for c in ("feature", "share")],
    ]
    raw = read_kdd(mirror / KDD10)
    assert len(got) == len(raw) == 494021
    assert summary.startswith(f"494021 rows, {int(got['is_outlier'].sum())} flagged (")
    assert "threshold" in summary and "rows/s" in summary
    # labelled input: the figures and per-category recall are printed
    assert "ROC-AUC" in proc.stderr and "recall dos" in proc.stderr and "recall macro" in proc.stderr
    # explanations: raw KDD names, categoricals with the row's own value, shares of at most the whole
    names = set(fields.NUMERIC) | {f"{c}={v}" for c in fields.CATEGORICAL for v in raw[c].unique()}
    assert set(got[["feature_1", "feature_2", "feature_3"]].to_numpy().ravel()) <= names
    service = got["feature_1"].str.startswith("service=")
    assert (got.loc[service, "feature_1"] == "service=" + raw.loc[service.to_numpy(), "service"]).all()
    shares = got[["share_1", "share_2", "share_3"]].to_numpy()
    assert (shares >= 0).all() and (shares.sum(1) <= 1 + 1e-4).all()
    assert (np.diff(shares, axis=1) <= 1e-6).all()  # ranked
    # a 5,000-row slice of the same file, scored by the library: the same rows
    assert_same_scores(got.head(5000).reset_index(drop=True), expected_scores(detector, raw.head(5000)))


@pytest.mark.parametrize("variant", ["kdd_slice", "nslkdd", "header_no_label", "parquet"])
def test_score_equals_detector_predict(pipeline, detector, mirror, tmp_path, variant):
    path = pipeline[0].path
    test = read_kdd(mirror / "KDDTest+.txt")
    records = pd.read_csv(mirror / "KDDTest+.txt", header=None)
    if variant == "kdd_slice":  # 5,000 rows of the raw KDD Cup 99 file, gzipped as distributed
        src = write_head(mirror / KDD10, tmp_path / "slice.gz", 5000)
        test = read_kdd(src)
    elif variant == "nslkdd":
        src = mirror / "KDDTest+.txt"
    elif variant == "header_no_label":
        unlabelled = records.iloc[:, :41].copy()
        unlabelled.columns = [{"src_bytes": "src_byts"}.get(c, c) for c in fields.FEATURES]  # a public copy's name
        src = tmp_path / "capture.csv.gz"
        with gzip.open(src, "wt") as f:
            unlabelled.to_csv(f, index=False)
    else:
        src = tmp_path / "capture.parquet"
        frame = records.copy()
        frame.columns = [*fields.FEATURES, "attack", "level"]
        frame.to_parquet(src, index=False)
    out = tmp_path / ("scores.parquet" if variant == "parquet" else "scores.csv")
    main(
        [
            "score",
            "--model",
            str(path / "models/detector"),
            "--input",
            str(src),
            "--output",
            str(out),
            "--chunk-rows",
            "5000",
        ]
    )
    got = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
    assert_same_scores(got, expected_scores(detector, test))


def test_info_names_model_data_threshold_and_metrics(pipeline):
    repo, _ = pipeline
    path = repo.path
    proc = repo.run(f"{INFO} --json")
    info = json.loads(proc.stdout)
    assert info["model"]["name"] == "fusion" and info["score"]["name"] == "likelihood"
    assert info["training_data"]["sha256"] == "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561"
    thr = json.loads((path / "models/threshold.json").read_text())["threshold"]
    assert info["threshold"] == pytest.approx(thr)
    metrics = json.loads((path / "reports/metrics.json").read_text())
    assert info["metrics"]["f1"] == pytest.approx(metrics["f1"])
    assert "threshold" in repo.run(INFO).stdout


@pytest.mark.parametrize(
    "edit, needles",
    [
        (lambda m: {**m, "roc_auc": "high"}, ("key 'roc_auc': expected a number in [0, 1], got 'high'",)),
        (lambda m: {**m, "f1": 1.7}, ("key 'f1': expected a number in [0, 1], got 1.7",)),
        (lambda m: {k: v for k, v in m.items() if k != "pr_auc"}, ("key 'pr_auc' missing",)),
        (lambda m: [m], ("expected a JSON object",)),
        (None, ("not a metrics file (JSONDecodeError",)),
    ],
    ids=["text", "out of range", "missing key", "a list", "cut short"],
)
def test_info_refuses_a_damaged_metrics_file_naming_the_key(pipeline, edit, needles):
    repo, _ = pipeline
    path = repo.path / "reports/metrics.json"
    good = path.read_text()
    try:
        path.write_text(good[: len(good) // 2] if edit is None else json.dumps(edit(json.loads(good))))
        proc = repo.run(INFO, code=2)
        [error] = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
        assert error.startswith("ERROR kddad: reports/metrics.json: ") and "Traceback" not in proc.stderr
        assert all(needle in error for needle in needles), error
        assert proc.stdout == ""
    finally:
        path.write_text(good)
    assert repo.run(f"{INFO} --json", code=0).stdout


def test_the_evaluate_stage_explains_its_top_alerts(pipeline):
    path = pipeline[0].path
    alerts = pd.read_csv(path / "reports/alerts.csv")
    assert 0 < len(alerts) <= 20
    assert alerts["instance_score"].is_monotonic_decreasing
    assert {"label", "category", "feature_1", "share_1"} <= set(alerts.columns)


def test_mlflow_run_has_model_dataset_and_serves_the_same_scores(pipeline, mirror, tmp_path):
    repo, _ = pipeline
    path, env = repo.path, repo.env
    client = MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("kddad")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    [run] = client.search_runs([exp.experiment_id])
    [data] = run.inputs.dataset_inputs
    assert [(t.key, t.value) for t in data.tags] == [("mlflow.data.context", "training")]
    assert data.dataset.name == "kddcup99" and data.dataset.digest == "8045aca0d84e70e6"
    assert json.loads(data.dataset.source)["url"].endswith("kddcup.data_10_percent.gz")
    [model] = client.search_logged_models([exp.experiment_id])
    assert model.source_run_id == run.info.run_id and model.name == "detector"
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]
    # the README's `dvc repro`: a few dozen metrics, every other figure of metrics.json in its tables
    where_each_went(client, run.info.run_id, json.loads((path / "reports" / "metrics.json").read_text()), path)
    rows = json.loads(data.dataset.profile)["rows"]
    assert rows == 494021 and run.data.params["dataset.rows"] == str(rows)  # one name, one meaning

    records = pd.read_csv(mirror / "KDDTest+.txt", header=None).iloc[:50, :41]
    records.columns = list(fields.FEATURES)
    src = tmp_path / "records.csv"
    records.to_csv(src, index=False)
    main(["score", "--model", str(path / "models/detector"), "--input", str(src), "--output", str(tmp_path / "s.csv")])
    want = pd.read_csv(tmp_path / "s.csv")

    port = free_port()
    serve_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{path / 'mlflow.db'}"}
    cmd = ["mlflow", "models", "serve", "-m", f"runs:/{run.info.run_id}/detector", "--env-manager", "local"]
    server = subprocess.Popen(
        [*cmd, "-p", str(port), "-h", "127.0.0.1"],
        cwd=path,  # the project root: its store's artifact locations are relative to it
        env=serve_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = lambda: (server.kill(), server.stdout.read())[1]  # noqa: E731 (read once it has stopped)
        wait_until_answers(f"http://127.0.0.1:{port}/ping", server, 180, "mlflow models serve", output)
        body = json.dumps({"dataframe_split": json.loads(records.to_json(orient="split", index=False))})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            served = pd.DataFrame(json.loads(response.read())["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    np.testing.assert_allclose(served["instance_score"], want["instance_score"], rtol=1e-5)
    assert (served["is_outlier"] == want["is_outlier"]).all()
    assert (served["feature_1"] == want["feature_1"]).all()


def _lines(mirror: Path, n: int) -> list[str]:
    with gzip.open(mirror / KDD10, "rt") as f:
        return [next(f) for _ in range(n)]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("columns", "line 3: expected 42 comma-separated fields (41 features + label), got 41"),
        ("text", "line 2, column 'src_bytes': expected an integer, got 'abc'"),
        ("fraction", "line 2, column 'src_bytes': expected an integer, got 0.5"),
        ("truncated", "the file ends early or is corrupt"),
        ("empty", "the file is empty"),
        ("header_only", "holds no records"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(pipeline, mirror, tmp_path, caplog, case, expected):
    path = pipeline[0].path
    lines = _lines(mirror, 2000)
    src = tmp_path / ("in.gz" if case == "truncated" else "in.csv")
    if case == "columns":
        lines[2] = lines[2].split(",", 1)[1]
    elif case in ("text", "fraction"):
        values = lines[1].split(",")
        values[4] = "abc" if case == "text" else "0.5"
        lines[1] = ",".join(values)
    if case == "truncated":
        blob = gzip.compress("".join(lines).encode())
        src.write_bytes(blob[: len(blob) // 2])
    elif case == "empty":
        src.write_text("")
    elif case == "header_only":
        src.write_text(",".join(fields.FEATURES) + "\n")
    else:
        src.write_text("".join(lines))
    out = tmp_path / "out.csv"
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--model", str(path / "models/detector"), "--input", str(src), "--output", str(out)])
    assert exit_.value.code == 2
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert error.startswith(str(src)) and expected in error
    assert list(tmp_path.iterdir()) == [src]  # no output, no temporary file left


def test_unknown_categories_are_counted_not_refused(pipeline, mirror, tmp_path, capsys):
    path = pipeline[0].path
    lines = _lines(mirror, 100)
    values = lines[5].split(",")
    values[2] = "never_seen_service"
    lines[5] = ",".join(values)
    src = tmp_path / "in.csv"
    src.write_text("".join(lines))
    main(["score", "--model", str(path / "models/detector"), "--input", str(src), "--output", str(tmp_path / "o.csv")])
    out = capsys.readouterr().out
    assert out.startswith("100 rows") and "1 unseen categorical values encoded as zeros" in out
    assert pd.read_csv(tmp_path / "o.csv").shape[0] == 100


def test_a_device_that_is_not_there_is_a_clear_error(pipeline, caplog, tmp_path, mirror):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = pipeline[0].path
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "score",
                "--model",
                str(path / "models/detector"),
                "--input",
                str(mirror / "KDDTest+.txt"),
                "--output",
                str(tmp_path / "o.csv"),
                "--device",
                "cuda",
            ]
        )
    assert exit_.value.code == 2
    assert "sees no CUDA device" in caplog.text and not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_workers_write_what_one_process_writes(pipeline, mirror, tmp_path, caplog, capsys, suffix):
    """20,000 rows in chunks of 3,000: two worker processes write the same file as one, in order."""
    path = pipeline[0].path
    src = write_head(mirror / KDD10, tmp_path / "slice.gz", 20000)
    caplog.set_level(logging.INFO)
    outs, said, figures = {}, {}, {}
    for workers in (1, 2):
        caplog.clear()
        outs[workers] = tmp_path / f"w{workers}{suffix}"
        args = ["--input", str(src), "--output", str(outs[workers]), "--workers", str(workers)]
        main(["score", "--model", str(path / "models/detector"), *args, "--chunk-rows", "3000", "--no-progress"])
        said[workers] = capsys.readouterr().out.split(" s (")[0].rsplit(",", 1)[0]  # rows, flagged, threshold
        figures[workers] = [r.getMessage() for r in caplog.records if "ROC-AUC" in r.getMessage()]
    assert said[1] == said[2] and said[1].startswith("20000 rows")
    assert figures[1] == figures[2] and figures[1]  # the labelled input's metrics
    if suffix == ".parquet":
        one, two = pd.read_parquet(outs[1]), pd.read_parquet(outs[2])
        pd.testing.assert_frame_equal(one, two)
    else:
        assert outs[1].read_bytes() == outs[2].read_bytes()
        one = pd.read_csv(outs[2])  # a gzip of one member per chunk reads as one file
    assert one["row"].tolist() == list(range(20000))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["slice.gz", outs[1].name, outs[2].name])


def test_a_fault_found_by_a_worker_names_its_line(pipeline, mirror, tmp_path, caplog):
    path = pipeline[0].path
    lines = _lines(mirror, 20000)
    values = lines[15000].split(",")
    values[4] = "-5"  # src_bytes: parses as a number, refused when the worker checks its chunk
    lines[15000] = ",".join(values)
    src = tmp_path / "in.csv"
    src.write_text("".join(lines))
    out = tmp_path / "out.csv"
    with pytest.raises(SystemExit) as exit_:
        main(
            ["score", "--model", str(path / "models/detector"), "--input", str(src), "--output", str(out)]
            + ["--workers", "2", "--chunk-rows", "3000", "--no-progress"]
        )
    assert exit_.value.code == 2
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert error == f"{src}: line 15001, column 'src_bytes': expected a non-negative count, got -5"
    assert list(tmp_path.iterdir()) == [src]


def test_ray_actors_write_what_one_process_writes(pipeline, mirror, tmp_path, ray_cluster, capsys):
    """20,000 rows scored by two actors of a local Ray cluster (2 CPUs, started in another folder)."""
    path = pipeline[0].path
    src = write_head(mirror / KDD10, tmp_path / "slice.gz", 20000)
    common = ["score", "--model", str(path / "models/detector"), "--input", str(src), "--no-progress"]
    main([*common, "--output", str(tmp_path / "one.csv"), "--workers", "1", "--chunk-rows", "3000"])
    one = capsys.readouterr().out
    main([*common, "--output", str(tmp_path / "ray.csv"), "--ray", "--workers", "2", "--chunk-rows", "3000"])
    on_ray = capsys.readouterr().out
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert on_ray.split(" s (")[0].rsplit(",", 1)[0] == one.split(" s (")[0].rsplit(",", 1)[0]
    assert pd.read_csv(tmp_path / "ray.csv")["row"].tolist() == list(range(20000))
