"""Faults and bad input at the stage drivers, run as users run them: one clear line, exit code 2,
nothing half-written. The project is a real one (default split of a slice of the real file, PCA baseline:
quick to train)."""

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.data import KDD10
from helpers.net import free_port
from helpers.project import ENV, data_project, stage, write_params
from helpers.repo import ROOT
from helpers.run import one_clear_line, run
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, kdd_slice):
    """The data stages in-process on a slice of the real file, then `train` and `threshold` through
    their drivers."""
    root = data_project(tmp_path_factory.mktemp("project"), kdd_slice)
    for name in ("train", "threshold"):
        proc = stage(root, name)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.mark.parametrize(
    "value, shown, driver",
    [("NaN", "nan", True), ('"0.5x"', "'0.5x'", True), ("Infinity", "inf", False), ("true", "True", False)],
)
def test_a_threshold_that_is_not_a_finite_number_is_refused(project, value, shown, driver):
    """Through the evaluate driver (NaN, text), and every case through Detector.load's check."""
    path = project / "models" / "threshold.json"
    good = path.read_text()
    info = json.loads(good)
    try:
        path.write_text(good.replace(f'"threshold": {json.dumps(info["threshold"])}', f'"threshold": {value}'))
        assert json.loads(path.read_text())["threshold"] != info["threshold"]
        if driver:
            proc = stage(project, "evaluate")
            one_clear_line(proc, "models/threshold.json", "'threshold'", "expected a finite number", shown)
            assert not (project / "reports" / "metrics.json").exists()
        from kddad import Detector
        from kddad.detector import DetectorError

        with pytest.raises(DetectorError, match=f"threshold.json: key 'threshold': expected a finite number.*{shown}"):
            Detector.load(project / "models" / "detector", threshold=path)
    finally:
        path.write_text(good)


def test_an_unreachable_tracking_server_fails_in_seconds_before_any_work(project):
    uri = f"http://127.0.0.1:{free_port()}"  # a port nothing listens on
    write_params(project, f"tracking.uri={uri}")
    before = (project / "models" / "detector" / "detector.json").stat().st_mtime_ns
    try:
        start = time.monotonic()
        proc = stage(project, "train", timeout=120)
        assert time.monotonic() - start < 30
        one_clear_line(proc, uri, "no MLflow server answers", "tracking.enabled=false")
        assert (project / "models" / "detector" / "detector.json").stat().st_mtime_ns == before  # no work done
        # the experiment entrypoint, single run and sweep, fail the same way before preparing any data
        for sweep in ([], ["-m"]):
            proc = run(
                [
                    sys.executable,
                    ROOT / "pipelines" / "experiment.py",
                    *sweep,
                    f"tracking.uri={uri}",
                    f"hydra.run.dir={project / 'out'}",
                    f"hydra.sweep.dir={project / 'sweep'}",
                ],
                project,
                {**ENV, "KDDAD_CACHE": str(project / "cache")},
                code=None,
                timeout=120,
            )
            assert proc.returncode == 2 and uri in proc.stdout + proc.stderr, proc.stderr[-3000:]
            assert "Traceback" not in proc.stderr and not (project / "cache").exists()
    finally:
        write_params(project)


def _raw_file(project: Path, lines: list[bytes]) -> None:
    raw = project / "data" / "raw" / KDD10
    with gzip.open(raw, "wb") as f:
        f.writelines(lines)


@pytest.mark.parametrize("case", ["latin-1", "empty"])
def test_bad_raw_files_end_in_one_line_naming_the_file(project, mirror, case):
    raw = project / "data" / "raw" / KDD10
    kept = raw.read_bytes()
    split_before = sorted(p.name for p in (project / "data" / "split").iterdir())
    try:
        if case == "latin-1":
            lines = gzip.open(mirror / KDD10, "rb").readlines()[:500]
            fields = lines[41].split(b",")
            fields[2] = "privé".encode("latin-1")
            lines[41] = b",".join(fields)
            _raw_file(project, lines)
            one_clear_line(stage(project, "split"), KDD10, "line 42", "column 'service'", "not UTF-8")
        else:
            _raw_file(project, [])
            one_clear_line(stage(project, "split"), KDD10, "the file is empty")
        assert sorted(p.name for p in (project / "data" / "split").iterdir()) == split_before
        assert not [p for p in (project / "data").iterdir() if p.name.startswith(".")]  # no temporary left
    finally:
        raw.write_bytes(kept)


def _running_runs(db: Path) -> list:
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("kddad")
    return client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []


def test_a_run_left_running_by_a_killed_stage_is_closed_by_the_next_execution(project):
    write_params(project, "model=vae", "trainer.max_epochs=30")  # long enough to be killed mid-way
    db = project / "mlflow.db"
    try:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "pipelines" / "train.py")],
            cwd=project,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _running_runs(db):
            assert proc.poll() is None, "train ended before it could be killed"
            time.sleep(0.5)
        [orphan] = _running_runs(db)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert MlflowClient(f"sqlite:///{db}").get_run(orphan.info.run_id).info.status == "RUNNING"
    finally:
        write_params(project)
    assert stage(project, "threshold").returncode == 0  # the next execution of any tracked stage
    run = MlflowClient(f"sqlite:///{db}").get_run(orphan.info.run_id)
    assert run.info.status == "KILLED" and "ended without closing it" in run.data.tags["kddad.closed"]
    assert not _running_runs(db)


#: root writes anywhere: without the capability to override file modes, it meets them like anyone
AS_ORDINARY_USER = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
]


@pytest.mark.parametrize("case", ["a file where the folder goes", "a read-only folder"])
def test_a_stage_that_cannot_write_its_output_says_where(project, tmp_path, case):
    copy = Path(shutil.copytree(project, tmp_path / "ro", ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts")))
    write_params(copy, "tracking.enabled=false")
    prefix: list[str] = []
    if case == "a file where the folder goes":
        shutil.rmtree(copy / "reports", ignore_errors=True)
        (copy / "reports").write_text("not a folder\n")
        name, needle = "evaluate", "reports"
    else:
        name, needle = "threshold", "models/threshold.json"
        os.chmod(copy / "models", 0o555)
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("running as root without setpriv (util-linux) to drop the file-mode override")
            prefix = AS_ORDINARY_USER
    before = sorted(str(p.relative_to(copy)) for p in copy.rglob("*"))
    proc = run([*prefix, sys.executable, ROOT / "pipelines" / f"{name}.py"], copy, ENV, code=None, timeout=300)
    one_clear_line(proc, needle, "cannot write this output")
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*")) == before  # nothing half-written


def _file_size_limit(nbytes: int):
    """A preexec_fn: files of this process may not grow past ``nbytes`` (a full disk, in effect);
    SIGXFSZ ignored, so a write past it fails with EFBIG as on a full file system."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def _kddad(*args: str, **kw) -> subprocess.CompletedProcess:
    """The `kddad` console script, as a user types it."""
    return run([Path(sys.executable).with_name("kddad"), *args], env=ENV, code=None, timeout=300, **kw)


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".part")) or ".old" in p.name]


def test_a_full_disk_during_kddad_score_is_one_line_and_leaves_nothing(project, mirror, tmp_path):
    out = tmp_path / "scores.csv"
    model = str(project / "models" / "detector")
    proc = _kddad(
        "score", "--model", model, "--input", str(mirror / "KDDTest+.txt"), "--output", str(out), "--no-progress",
        preexec_fn=_file_size_limit(256 << 10),
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert str(out) in error and "cannot write this output (File too large)" in error
    assert list(tmp_path.iterdir()) == []  # no partial output, no temporary file


def test_a_full_disk_during_evaluate_is_one_line_and_leaves_nothing_partial(project, tmp_path):
    copy = Path(shutil.copytree(project, tmp_path / "full", ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts")))
    write_params(copy, "tracking.enabled=false")
    shutil.rmtree(copy / "reports", ignore_errors=True)
    proc = stage(copy, "evaluate", preexec_fn=_file_size_limit(16 << 10))
    one_clear_line(proc, "reports", "cannot write this output (File too large)")
    assert not _temporaries(copy)
    for path in (copy / "reports").rglob("*"):  # what was written before the disk filled is whole
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".png":
            assert path.read_bytes().endswith(b"IEND\xaeB`\x82")


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_evaluate_leaves_the_last_runs_reports_whole(project, tmp_path):
    """The evaluate stage's four outputs (metrics, alerts, plots, figures) are swapped in together:
    a second run, at another threshold, that meets a full disk after writing its metrics leaves
    the first run's outputs byte for byte, none of its own beside them, and no temporary."""
    copy = Path(shutil.copytree(project, tmp_path / "twice", ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts")))
    write_params(copy, "tracking.enabled=false")
    proc = stage(copy, "evaluate")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = copy / "reports"
    outputs = ("metrics.json", "alerts.csv", "plots", "figures")
    first = _contents(reports)
    assert {name.split("/")[0] for name in first} >= set(outputs)
    # a limit that lets the metrics and alerts be written (first), not every plot and figure
    small = max(len(first[name]) for name in outputs[:2])
    biggest = max(len(b) for name, b in first.items() if name.startswith(("plots/", "figures/")))
    assert small < biggest
    threshold = copy / "models" / "threshold.json"
    info = json.loads(threshold.read_text())
    threshold.write_text(json.dumps({**info, "threshold": info["threshold"] * 1.5}))
    proc = stage(copy, "evaluate", preexec_fn=_file_size_limit((small + biggest) // 2))
    one_clear_line(proc, "reports", "cannot write this output (File too large)")
    assert _contents(reports) == first
    assert not _temporaries(copy) and not [p for p in reports.iterdir() if p.name.startswith(".")]


def test_a_killed_kddad_score_leaves_no_worker_and_its_temporary_is_swept_by_the_next_run(project, mirror, tmp_path):
    """``kill -9`` of a 2-worker run: its workers and multiprocessing's helper end within seconds,
    and the next run writing there removes the temporary file the killed one left."""
    big = tmp_path / "big.csv"  # slow enough to be caught mid-write
    with gzip.open(mirror / KDD10, "rb") as fin, open(big, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    out = tmp_path / "out" / "scores.csv"
    cmd = [str(Path(sys.executable).with_name("kddad")), "score", "--model", str(project / "models" / "detector")]
    cmd += ["--input", str(big), "--output", str(out), "--no-progress", "--chunk-rows", "20000", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not [p for p in _temporaries(out.parent) if p.stat().st_size] and time.monotonic() < deadline:
            assert proc.poll() is None, "kddad score ended before it could be killed"
            time.sleep(0.05)
        assert len(_group(proc.pid)) >= 3, "the workers were not running when the command was killed"
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group(proc.pid), f"processes of the killed run outlived it: {_group(proc.pid)}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    [left] = _temporaries(out.parent)
    assert str(proc.pid) in left.name and not out.exists()
    small = tmp_path / "small.csv"
    small.write_bytes(b"".join(big.open("rb").readlines()[:1000]))
    done = _kddad("score", "--model", str(project / "models" / "detector"), "--input", str(small), "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert not _temporaries(out.parent) and out.is_file()


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies of it are gone, not live)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live
