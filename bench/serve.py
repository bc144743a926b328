"""The served model's latency and throughput: ``mlflow models serve`` on loopback, as users start it.

Run from the project root after ``make run``: the model the last run logged (the run record in
``models/``, or ``--model-uri``) is served with ``mlflow models serve --env-manager local`` on a free
127.0.0.1 port. Then, one request at a time:

- ``--single`` requests of one record each (``dataframe_split`` JSON, a different record of the
  10% file each time, top 3 explanations): p50, p90, p99 and the largest latency, client side,
  after ``--warmup`` requests;
- ``--batches`` requests of ``--batch-rows`` records each: rows/s per request (best and median).

With ``--profile``, the same model is also loaded in this process (``mlflow.pyfunc.load_model``)
and one record's ``predict`` is timed without the server: the server's own share is the rest.

Usage: python bench/serve.py [--model-uri runs:/ID/detector] [--single 500] [--batches 5] [--batch-rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from _data import ROOT, mirror

from kddad.data import fields
from kddad.data.read import read_kdd
from kddad.paths import Paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> tuple[float, dict]:
    """Seconds from sending the request to the answer's last byte (the client's parsing of it after), and the answer."""
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        answer = resp.read()
    return time.perf_counter() - start, json.loads(answer)


def request(frame: pd.DataFrame) -> bytes:
    return json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)}).encode()


def serve(uri: str, tracking: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = ["mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    out = open(log, "w")
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking},
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/ping", timeout=2).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise SystemExit(f"mlflow models serve did not come up:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {ms.max():.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-uri", help="default: runs:/<the last run>/detector, from the run record in models/")
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--batch-rows", type=int, default=20_000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    run = json.loads((ROOT / Paths().run_record).read_text())
    uri = args.model_uri or f"runs:/{run['mlflow_run_id']}/detector"
    records = read_kdd(mirror() / "kddcup.data_10_percent.gz")[list(fields.FEATURES)]
    rows = records.sample(frac=1, random_state=0).reset_index(drop=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; model {uri}")
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = serve(uri, run["tracking_uri"], Path(tmp) / "server.log")
        try:
            invocations = f"{url}/invocations"
            singles = [request(rows.iloc[[i]]) for i in range(args.warmup + args.single)]
            for body in singles[: args.warmup]:
                post(invocations, body)
            latency = []
            for body in singles[args.warmup :]:
                seconds, answer = post(invocations, body)
                latency.append(seconds)
            assert len(answer["predictions"]) == 1
            print(f"one record a request, {args.single} requests: {percentiles(latency)}")
            rates = []
            for b in range(args.batches):
                chunk = rows.iloc[b * args.batch_rows : (b + 1) * args.batch_rows]
                seconds, answer = post(invocations, request(chunk))
                assert len(answer["predictions"]) == len(chunk)
                rates.append(len(chunk) / seconds)
            print(
                f"{args.batch_rows:,} records a request, {args.batches} requests: "
                f"{statistics.median(rates):,.0f} rows/s median, {max(rates):,.0f} best"
            )
        finally:
            stop(proc)
    if args.profile:
        import mlflow

        mlflow.set_tracking_uri(run["tracking_uri"])
        model = mlflow.pyfunc.load_model(uri)
        one = rows.iloc[[0]]
        for _ in range(args.warmup):
            model.predict(one)
        times = []
        for i in range(args.single):
            start = time.perf_counter()
            model.predict(rows.iloc[[i]])
            times.append(time.perf_counter() - start)
        print(f"in process, pyfunc predict of one record: {percentiles(times)}")


if __name__ == "__main__":
    main()
