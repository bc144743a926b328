"""A real `dvc repro` / `dvc exp run` of the data stages in a temporary copy of the repo."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict, stdout_only: bool = False) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out}"
    return proc.stdout if stdout_only else out


def _ran(out: str) -> set[str]:
    return {s for s in ("download", "split", "encode") if f"Running stage '{s}'" in out}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mirror):
    """The working tree (tracked and untracked-not-ignored files) as a fresh git repo."""
    dst = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file() and not f.startswith(("dvc.lock", "reports/")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    env = {**os.environ, "KDDAD_DATA_MIRROR": str(mirror),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        _run(cmd, dst, env)
    return dst, env


def test_repro_runs_the_data_stages_once(repo):
    path, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    assert _ran(_run([*dvc, "repro", "encode"], path, env)) == {"download", "split", "encode"}
    report = json.loads((path / "reports/split.json").read_text())
    assert report["identical_to_train"]["on_all41"] == {"val": 0, "threshold": 0, "test": 0}
    assert (path / "models/encoder/encoder.skops").is_file()
    assert (path / "data/features/test.npy").is_file()
    second = _run([*dvc, "repro", "encode"], path, env)
    assert _ran(second) == set() and "up to date" in second
    _run(["git", "add", "-A"], path, env)
    _run(["git", "commit", "-qm", "lock"], path, env)


def test_exp_run_reruns_only_what_depends_on_the_change(repo):
    path, env = repo
    dvc = [sys.executable, "-m", "dvc"]
    assert _ran(_run([*dvc, "exp", "run", "-S", "split.dedupe=true"], path, env)) == {"split", "encode"}
    assert json.loads((path / "reports/split.json").read_text())["duplicates_dropped"] == 494021 - 145586
    # Hydra composition: a group override rewrites params.yaml and re-runs only encode
    assert _ran(_run([*dvc, "exp", "run", "-S", "features=all41"], path, env)) == {"encode"}
    meta = json.loads((path / "data/features/meta.json").read_text())
    assert "service_http" in meta["feature_names"]
    # a model setting touches none of the data stages
    assert _ran(_run([*dvc, "exp", "run", "-S", "model=ae"], path, env)) == set()
    shown = json.loads(_run([*dvc, "exp", "show", "--json"], path, env, stdout_only=True))
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    dropped = sorted(run["data"]["metrics"]["reports/split.json"]["data"]["duplicates_dropped"]
                     for e in exps for run in e["revs"])
    assert dropped == [0, 0, 494021 - 145586]  # dedupe, then two experiments based on main
