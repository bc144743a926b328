"""The served MLflow model answers like a service: a bad record is HTTP 400 with one line naming the
row and column (no stack trace, no dump of the request), a good one the detector's scores.

One detector, trained by a real `dvc repro` in a fresh copy of the repo (the quick preset on
NSL-KDD's 20% file, the cheapest real run: about a minute), served by one real
`mlflow models serve --env-manager local` for the whole module."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.config import use_preset
from helpers.net import free_port, wait_until_answers
from helpers.repo import Repo
from helpers.run import output
from helpers.scores import assert_same_scores, expected_scores

from kddad.data import fields
from kddad.detector import Detector

pytestmark = pytest.mark.slow
ROW = 2  # the record of the request that is made bad
FIELDS = {"error_code", "message", "sqlstate", "error_class"}


@pytest.fixture(scope="module")
def trained(clone: Repo) -> tuple[Path, dict, str]:
    """A fresh copy of the repo after `dvc repro` (debug=quick, dataset=nslkdd20); its environment and
    the repro's output."""
    use_preset(clone.path, "debug", "quick")
    use_preset(clone.path, "dataset", "nslkdd20")
    proc = clone.dvc("repro")
    return clone.path, clone.env, output(proc)


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    """What the server writes (its stdout and stderr)."""
    return tmp_path_factory.mktemp("serve") / "server.log"


@pytest.fixture(scope="module")
def server(trained, server_log):
    """The run's logged model behind `mlflow models serve` on a free 127.0.0.1 port: its base URL."""
    path, env, _ = trained
    run = json.loads((path / "models" / "mlflow_run.json").read_text())
    port = free_port()
    log = open(server_log, "w+")  # closed at teardown
    cmd = ["mlflow", "models", "serve", "-m", f"runs:/{run['mlflow_run_id']}/detector", "--env-manager", "local"]
    proc = subprocess.Popen(
        [*cmd, "-h", "127.0.0.1", "-p", str(port)],
        cwd=path,
        env={**env, "MLFLOW_TRACKING_URI": run["tracking_uri"]},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the uvicorn it starts is stopped with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/ping", proc, 180, "mlflow models serve", lambda: (log.seek(0), log.read())[1])
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


@pytest.fixture(scope="module")
def records(mirror) -> pd.DataFrame:
    """The first 50 records of NSL-KDD's KDDTest+.txt, the 41 features by name."""
    df = pd.read_csv(mirror / "KDDTest+.txt", header=None, nrows=50).iloc[:, :41]
    df.columns = list(fields.FEATURES)
    return df


def _post(url: str, body: dict | bytes, content_type: str = "application/json") -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/invocations", data, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _payload(df: pd.DataFrame, orient: str) -> dict:
    """A request as a client writes it: values as Python objects (None for null), not pandas' own."""
    rows = df.astype(object).where(df.notna(), None)
    if orient == "split":
        return {"dataframe_split": {"columns": list(df.columns), "data": rows.values.tolist()}}
    return {"dataframe_records": rows.to_dict(orient="records")}


BAD = {  # the value put in row ROW (None: null; the column left out for "missing column") and the answer
    "missing column": ("src_bytes", None, "columns: the 41 KDD features are needed by name; missing ['src_bytes']"),
    "text in a count": ("src_bytes", "abc", "column 'src_bytes': expected an integer, got 'abc'"),
    "text in a rate": ("serror_rate", "high", "column 'serror_rate': expected a number, got 'high'"),
    "true in a count": ("logged_in", True, "column 'logged_in': expected an integer, got True"),
    "null count": ("dst_bytes", None, "column 'dst_bytes': missing value"),
    "null rate": ("same_srv_rate", None, "column 'same_srv_rate': missing value"),
    "null category": ("service", None, "column 'service': missing value"),
    "negative count": ("count", -3, "column 'count': expected a non-negative count, got -3"),
    "rate above 1": ("serror_rate", 1.5, "column 'serror_rate': expected a rate in [0, 1], got 1.5"),
    "negative rate": (
        "dst_host_rerror_rate",
        -0.25,
        "column 'dst_host_rerror_rate': expected a rate in [0, 1], got -0.25",
    ),
    "fractional count": ("hot", 2.5, "column 'hot': expected an integer, got 2.5"),
}


@pytest.mark.parametrize("orient", ["split", "records"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_value_is_400_with_one_line_naming_row_and_column(server, records, case, orient):
    col, value, answer = BAD[case]
    df = records.head(5).copy()
    if case == "missing column":
        df = df.drop(columns=col)
    else:
        df = df.astype({col: object})
        df.loc[ROW, col] = value
        answer = f"row {ROW}, {answer}"
    status, text = _post(server, {**_payload(df, orient), "params": {"top_k": 3}})
    assert status == 400, text
    body = json.loads(text)
    # exactly our line: no stack trace, no "Failed to predict data '<the request>'", nothing else
    assert body["message"] == f"request: {answer}" and "\n" not in body["message"]
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and set(body) <= FIELDS, text
    assert "stack_trace" not in body


def test_a_good_request_gets_the_detectors_scores(server, trained, records):
    path, _, repro_log = trained
    # the input example was validated against the signature when the evaluate stage logged it
    assert "Validating input example" in repro_log and "Failed to validate serving input example" not in repro_log
    status, text = _post(server, {**_payload(records, "split"), "params": {"top_k": 3}})
    assert status == 200, text
    served = pd.DataFrame(json.loads(text)["predictions"])
    det = Detector.load(path / "models" / "detector", threshold=path / "models" / "threshold.json")
    want = expected_scores(det, records)
    assert len(served) == len(records) == 50
    assert_same_scores(served, want)
    # the answer's text is MLflow's own serialisation of those predictions, byte for byte
    from mlflow.pyfunc import scoring_server

    mlflows = getattr(scoring_server.predictions_to_json, "mlflows", scoring_server.predictions_to_json)
    written = io.StringIO()
    mlflows(served, written)
    assert text == written.getvalue()
    # the same records as dataframe_records, the rates that are 0 or 1 written as integers (0, not 0.0)
    rates = {
        c: pd.Series([int(v) if v in (0, 1) else v for v in records[c]], dtype=object) for c in fields.FLOAT_COLUMNS
    }
    status, text = _post(server, _payload(records.assign(**rates), "records"))
    assert status == 200, text
    np.testing.assert_allclose(
        pd.DataFrame(json.loads(text)["predictions"])["instance_score"], want["instance_score"], rtol=1e-5
    )


def _refusal(status: int, text: str) -> str:
    """A refusal's one line, checked to be one: HTTP 400, MLflow's fields, no stack trace."""
    assert status == 400, text
    body = json.loads(text)
    assert set(body) <= FIELDS and "stack_trace" not in body and "Traceback" not in text, text
    assert "\n" not in body["message"] and body["message"].startswith("request: "), text
    return body["message"]


def test_a_headered_csv_request_gets_the_json_requests_answer(server, records):
    """MLflow's CSV input (a header row), as a capture file holds it: the same predictions; a bad
    CSV is refused naming the body's line (the header is line 1) and column."""
    rows = records.head(20)
    status, text = _post(server, rows.to_csv(index=False).encode(), "text/csv")
    assert status == 200, text
    from_csv = json.loads(text)["predictions"]
    status, text = _post(server, _payload(rows, "split"))
    assert status == 200 and from_csv == json.loads(text)["predictions"] and len(from_csv) == 20
    bad = rows.astype({"src_bytes": object})
    bad.loc[ROW, "src_bytes"] = "abc"
    message = _refusal(*_post(server, bad.to_csv(index=False).encode(), "text/csv"))
    assert message == f"request: line {ROW + 2}, column 'src_bytes': expected an integer, got 'abc'"
    lines = rows.to_csv(index=False).splitlines()
    lines[4] += ",7"
    message = _refusal(*_post(server, "\n".join(lines).encode(), "text/csv"))
    assert message == "request: CSV line 5: expected 41 comma-separated fields (as the header row), got 42"
    assert _refusal(*_post(server, b"", "text/csv")).startswith("request: the CSV body is empty")


#: A value no refusal may quote back: the request's records stay out of answers and logs.
MARK = 987_654_321


def test_no_refusal_quotes_the_request(server, server_log, records):
    rows = records.head(5).assign(src_bytes=MARK)
    split = _payload(rows, "split")
    body = json.dumps(split).encode()
    cases = {
        "cut JSON": (body[: len(body) // 2], "application/json"),
        "a JSON list": (json.dumps(split["dataframe_split"]["data"]).encode(), "application/json"),
        "a row too short": (
            json.dumps(
                {
                    "dataframe_split": {
                        **split["dataframe_split"],
                        "data": [r[:-1] for r in split["dataframe_split"]["data"]],
                    }
                }
            ).encode(),
            "application/json",
        ),
        "top_k as text": (json.dumps({**split, "params": {"top_k": "many"}}).encode(), "application/json"),
        "no known key": (json.dumps({"rows": split["dataframe_split"]["data"]}).encode(), "application/json"),
        "text in a CSV count": (rows.assign(hot="x").to_csv(index=False).encode(), "text/csv"),
    }
    answers = {}
    for case, (data, kind) in cases.items():
        status, text = _post(server, data, kind)
        answers[case] = text
        assert 400 <= status < 500 and str(MARK) not in text, f"{case}: {text}"
        assert "Traceback" not in text and "stack_trace" not in text, f"{case}: {text}"
    message = json.loads(answers["cut JSON"])["message"]
    assert message.startswith("request: not valid JSON: ") and ", column " in message, message
    assert str(MARK) not in server_log.read_text()


def test_answers_written_in_one_shot_are_mlflows_text(records):
    """In the server's process the model's loading installs kddad's answers, once; the answer
    writer writes what MLflow's would (float32 shares, int8 flags, text), and leaves answers with
    metadata to it."""
    import mlflow.pyfunc.scoring_server as server

    from kddad.pyfunc_model import serve_answers

    rng = np.random.default_rng(0)
    answer = pd.DataFrame(
        {
            "instance_score": rng.normal(size=20) * 100,
            "is_outlier": rng.integers(0, 2, 20).astype(np.int8),
            "feature_1": records["service"].head(20).radd("service=").to_numpy(),
            "share_1": rng.random(20).astype(np.float32),
        }
    )
    names = ("predictions_to_json", "invocations", "parse_csv_input")
    mlflows = {name: getattr(server, name) for name in names}
    try:
        serve_answers()
        serve_answers()  # once
        for name in names:
            assert getattr(server, name) is not mlflows[name] and getattr(server, name).mlflows is mlflows[name]
        ours, theirs = io.StringIO(), io.StringIO()
        server.predictions_to_json(answer, ours)
        mlflows["predictions_to_json"](answer, theirs)
        assert ours.getvalue() == theirs.getvalue() and '"share_1": ' in ours.getvalue()
        with pytest.raises(Exception, match="metadata cannot contain 'predictions'"):
            server.predictions_to_json(answer, io.StringIO(), {"predictions": 1})
    finally:
        for name, original in mlflows.items():
            setattr(server, name, original)


def test_counts_as_floats_and_the_readers_header_names_get_the_same_answer(server, server_log, records):
    """What the file reader takes, the server takes: counts written 0.0 (a frame that held a missing
    value), and the header spellings the reader maps, with the reader's warning in the server's log."""
    rows = records.head(20)
    status, text = _post(server, _payload(rows, "split"))
    assert status == 200, text
    want = json.loads(text)["predictions"]
    counts = [c for c in fields.NUMERIC if c not in fields.FLOAT_COLUMNS]
    floats = rows.astype(dict.fromkeys(counts, float))
    assert '"src_bytes": 12983.0,' in json.dumps(_payload(floats, "records"))  # counts sent as floats
    for orient in ("split", "records"):
        status, text = _post(server, _payload(floats, orient))
        assert status == 200 and json.loads(text)["predictions"] == want, text
    status, text = _post(server, floats.to_csv(index=False).encode(), "text/csv")
    assert status == 200 and json.loads(text)["predictions"] == want, text
    half = floats.copy()
    half.loc[ROW, "hot"] = 0.5
    assert (
        _refusal(*_post(server, _payload(half, "split")))
        == f"request: row {ROW}, column 'hot': expected an integer, got 0.5"
    )
    spellings = {
        "misspelled": {"srv_serror_rate": "srv_error_rate"},
        "OpenML's l prefix": {c: "l" + c for c in fields.FEATURES[12:20]},
        "upper case": {c: c.upper() for c in fields.FEATURES},
    }
    for case, names in spellings.items():
        status, text = _post(server, _payload(rows.rename(columns=names), "split"))
        assert status == 200 and json.loads(text)["predictions"] == want, f"{case}: {text}"
    log = server_log.read_text()
    assert (
        "request: columns: 1 name(s) are not KDD names, taken by their position: 'srv_error_rate' as 'srv_serror_rate'"
        in log
    )
    assert "request: columns: 8 name(s) are not KDD names, taken by their position: 'lnum_compromised'" in log
