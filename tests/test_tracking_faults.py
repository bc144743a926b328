"""Faults in the middle of a run: the tracking server goes away, a signal arrives. Each ends the
stage promptly with one line, leaves the local outputs as they were and the MLflow run closed (or
closable). The stages run through their drivers, as DVC runs them, on a slice of the real data."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.net import free_port
from helpers.project import ENV, data_project, write_params
from helpers.repo import ROOT
from helpers.run import one_clear_line
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from kddad.config import TrackingConfig
from kddad.entry import signals_interrupt, user_errors
from kddad.errors import Interrupted, TrackingError
from kddad.models.training import CHECKPOINT_PREFIX
from kddad.tracking import CLIENT_BOUNDS, OWNER_TAG, Tracker

pytestmark = pytest.mark.slow

#: Training that lasts: an autoencoder with large batches (a short epoch, so the next epoch's log
#: comes soon) and no early end; the tests stop it
LONG_TRAINING = (
    "model=ae",
    "model.batch_size=1024",
    "trainer.max_epochs=1000",
    "early_stopping.patience=1000",
)
STAGE_ENV = {**ENV, "OMP_NUM_THREADS": "1"}  # two cores shared with the MLflow server and the test


def _wait(what: str, ready, timeout: float, proc: subprocess.Popen | None = None, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended first (exit code {proc.returncode})")
        try:
            found = ready()
        except Exception:  # not there yet (the store being created, the server starting)
            found = None
        if found:
            return found
        time.sleep(step)
    pytest.fail(f"{what}: not within {timeout:g} s")


def _end(proc: subprocess.Popen) -> None:
    """Kill ``proc``'s process group (it was started in a session of its own) if it still runs."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


@contextmanager
def _mlflow_server(folder: Path):
    """A real ``mlflow server`` on a free port, in a session of its own (so that its whole process
    group, workers included, can be killed); yields (process, URL, its SQLite store's URI)."""
    port = free_port()
    store = f"sqlite:///{folder / 'server.db'}"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--backend-store-uri", store, "--artifacts-destination", str(folder / "artifacts")),
            *("--workers", "1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("mlflow server", lambda: urllib.request.urlopen(f"{url}/health", timeout=2), 90, proc)
        yield proc, url, store
    finally:
        _end(proc)


def _train(project: Path) -> subprocess.Popen:
    """``python pipelines/train.py`` in ``project``, in a session of its own, its output captured."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "pipelines" / "train.py")],
        cwd=project,
        env=STAGE_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _trained_an_epoch(uri: str, experiment: str):
    """The run of ``experiment`` once its first epoch's loss is in the store, else None."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return runs[0] if runs and client.get_metric_history(runs[0].info.run_id, "train_loss") else None


def _snapshot(project: Path) -> dict[str, str]:
    """Every file of the project (its outputs so far) with its sha256; params.yaml left out."""
    return {
        str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(project.rglob("*"))
        if p.is_file() and p.name != "params.yaml"
    }


def _outputs_intact(project: Path, before: dict[str, str], pid: int) -> None:
    """The outputs as they were: nothing changed, removed or added (no detector, no temporary
    entry), and the stage's checkpoint folder gone."""
    assert _snapshot(project) == before
    assert not [p for p in project.rglob(".*") if p.name.endswith((".tmp", ".old"))]
    assert not list(Path(tempfile.gettempdir()).glob(f"{CHECKPOINT_PREFIX}{pid}-*"))


@pytest.fixture(scope="module")
def project(tmp_path_factory, kdd_slice):
    """A project whose data stages ran on a slice of the real file (data/ and the encoder in
    models/), and nothing after them."""
    return data_project(tmp_path_factory.mktemp("project"), kdd_slice)


def test_a_server_lost_mid_training_ends_the_stage_within_a_minute(project, tmp_path):
    with _mlflow_server(tmp_path) as (server, url, store):
        write_params(project, *LONG_TRAINING, f"tracking.uri={url}", "tracking.experiment=lost")
        before = _snapshot(project)
        proc = _train(project)
        try:
            run = _wait("the first epoch's loss in the server", lambda: _trained_an_epoch(url, "lost"), 150, proc)
            os.killpg(server.pid, signal.SIGKILL)  # the server and its workers, at once
            server.wait(timeout=30)
            killed = time.monotonic()
            out, err = proc.communicate(timeout=120)
            took = time.monotonic() - killed
        finally:
            _end(proc)
    assert took < 60, f"{took:.0f} s after the server went: {err[-3000:]}"
    line = one_clear_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), url)
    assert "stopped answering" in line and "marks it KILLED" in line, line
    assert "Retrying" not in err  # urllib3's retry warnings: the one line says how it ended
    _outputs_intact(project, before, proc.pid)
    # the run was left RUNNING, owned by the stage's (now gone) process; the next tracked execution
    # that reaches the store closes it (here: on the server's own store, the server being gone)
    left = MlflowClient(store).get_run(run.info.run_id)
    assert left.info.status == "RUNNING" and f":{proc.pid}:" in left.data.tags[OWNER_TAG]
    Tracker(TrackingConfig(uri=store, experiment="lost"), root=tmp_path).connect()
    assert MlflowClient(store).get_run(run.info.run_id).info.status == "KILLED"


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_training_at_once_and_marks_the_run_killed(project, tmp_path, signum, code):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = write_params(project, *LONG_TRAINING, f"tracking.uri={store}", "tracking.experiment=signals")
    Tracker(cfg.tracking, root=project).experiment_id()  # the store exists before the stage and we both open it
    before = _snapshot(project)
    proc = _train(project)
    try:
        run = _wait("the first epoch's loss", lambda: _trained_an_epoch(store, "signals"), 120, proc)
        proc.send_signal(signum)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        _end(proc)
    assert took < 20, err[-3000:]
    assert proc.returncode == code, err[-3000:]
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert errors[0].endswith(f"interrupted by {signal.Signals(signum).name}")
    assert MlflowClient(store).get_run(run.info.run_id).info.status == "KILLED"
    _outputs_intact(project, before, proc.pid)


def test_a_lost_server_fails_every_later_call_at_once(monkeypatch):
    """In-process: the guard's lost state and deadline, without a server (nothing listens)."""
    for name in CLIENT_BOUNDS:  # the tracker's bounds, not a user's, are what hold the call short
        monkeypatch.delenv(name, raising=False)
    uri = f"http://127.0.0.1:{free_port()}"
    tracker = Tracker(TrackingConfig(uri=uri), root=Path.cwd())
    start = time.monotonic()
    with pytest.raises(TrackingError, match=f"tracking.uri {uri}: .*stopped answering \\(Connection refused\\)"):
        tracker.client.get_experiment_by_name("kddad")
    assert time.monotonic() - start < 15  # 3 attempts, 0 + 2 s apart (MLflow's own: minutes)
    start = time.monotonic()
    with pytest.raises(TrackingError, match="stopped answering"):
        tracker.finish("some-run")
    with pytest.raises(TrackingError, match="stopped answering"):
        tracker.lightning_logger("some-run").log_metrics({"val_loss": 1.0}, 1)
    tracker.lightning_logger("some-run").finalize("failed")  # an error's teardown: no second error
    assert time.monotonic() - start < 0.5

    # a call that never answers ends at its deadline; an error the server sent back passes through
    hung = Tracker(TrackingConfig(uri=uri), root=Path.cwd())
    start = time.monotonic()
    with pytest.raises(TrackingError, match="no answer within 0.2 s"):
        hung.call(time.sleep, 30, deadline=0.2)
    assert time.monotonic() - start < 2
    answering = Tracker(TrackingConfig(uri=uri), root=Path.cwd())

    def refused():
        raise MlflowException("RESOURCE_ALREADY_EXISTS")

    with pytest.raises(MlflowException, match="RESOURCE_ALREADY_EXISTS"):
        answering.call(refused)
    assert answering.lost is None and answering.call(lambda: 7) == 7


def _bounds_seen() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in CLIENT_BOUNDS}


def test_the_client_bounds_are_set_inside_tracking_calls_only(tmp_path, monkeypatch):
    """MLflow reads its HTTP retry settings from the environment: the tracker's bounds are there
    while its calls to a real server run, and neither before nor after, where a child process
    (a served model, a Ray worker) would inherit them; a user's own setting is kept."""
    for name in CLIENT_BOUNDS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's
    mine = {**CLIENT_BOUNDS, "MLFLOW_HTTP_REQUEST_TIMEOUT": "7"}
    outside = {**dict.fromkeys(CLIENT_BOUNDS), "MLFLOW_HTTP_REQUEST_TIMEOUT": "7"}
    child = [
        sys.executable,
        "-c",
        f"import os, json; print(json.dumps({{n: os.environ.get(n) for n in {list(CLIENT_BOUNDS)!r}}}))",
    ]
    with _mlflow_server(tmp_path) as (_, url, _):
        tracker = Tracker(TrackingConfig(uri=url, experiment="bounds"), root=tmp_path).connect()
        assert _bounds_seen() == outside
        seen = tracker.call(lambda: (_bounds_seen(), json.loads(subprocess.check_output(child, text=True))))
        assert seen == (mine, mine)  # in the call, a process it starts inherits them too
        run_id = tracker.client.create_run(tracker.experiment_id()).info.run_id
        tracker.finish(run_id)
        assert tracker.client.get_run(run_id).info.status == "FINISHED"
        assert _bounds_seen() == outside
        assert json.loads(subprocess.check_output(child, text=True)) == outside


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_user_errors_turns_a_signal_into_cleanup_and_an_exit_code(signum, code, tmp_path, caplog):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    cleaned = threading.Event()
    with pytest.raises(SystemExit) as ended:
        with user_errors():
            try:
                os.kill(os.getpid(), signum)
                time.sleep(10)
            finally:
                cleaned.set()
    assert ended.value.code == code and cleaned.is_set()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"interrupted by {signal.Signals(signum).name}"
    ]
    assert {s: signal.getsignal(s) for s in before} == before  # the previous handlers are back


def test_a_signal_waits_for_a_local_store_call_and_leaves_the_store_unlocked(tmp_path):
    tracker = Tracker(TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}"), root=tmp_path)
    run_id = tracker.client.create_run(tracker.experiment_id()).info.run_id
    finished: list[str] = []

    def write() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler has run by now: undeferred, it would raise here
        tracker.client.log_param(run_id, "written", "after the signal")
        finished.append("write")

    with pytest.raises(Interrupted, match="SIGTERM"):
        with signals_interrupt():
            tracker.call(write)
            finished.append("after the call")
    assert finished == ["write"]
    tracker.call(tracker.client.set_terminated, run_id, "KILLED")  # no lock left behind
    run = MlflowClient(tracker.uri).get_run(run_id)
    assert run.info.status == "KILLED" and run.data.params == {"written": "after the signal"}
