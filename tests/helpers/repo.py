"""The repo as a new user's clone: its files in a fresh git repo, and the environment of their shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.run import run

ROOT = Path(__file__).resolve().parents[2]
#: Variables of ours a user's shell does not have
NOT_A_USERS = ("KDDAD_CACHE", "DVC_ROOT", "MLFLOW_TRACKING_URI")
DVC = [sys.executable, "-m", "dvc"]


def user_env(mirror: Path) -> dict[str, str]:
    """A user's shell: the virtualenv's ``python`` and ``dvc`` first on PATH, the data mirror set,
    a git identity, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_A_USERS}
    env.update(
        {
            "KDDAD_DATA_MIRROR": str(mirror),
            "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
    )
    return env


def copy_repo(dst: Path, mirror: Path) -> dict[str, str]:
    """The working tree (tracked and untracked-not-ignored files) as a fresh git repo at ``dst``, as a
    new user's clone; returns their environment (:func:`user_env`)."""
    files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout.split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file() and not f.startswith(("dvc.lock", "reports/")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    env = user_env(mirror)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(cmd, dst, env)
    return env


@dataclass(frozen=True)
class Repo:
    """A clone-like copy of the repo and its user's environment."""

    path: Path
    env: dict[str, str]

    def run(self, cmd: str | list, **kw) -> subprocess.CompletedProcess:
        """``cmd`` run in the copy, as its user runs it (see :func:`helpers.run.run`)."""
        return run(cmd, self.path, self.env, **kw)

    def dvc(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """``dvc <args>`` with this virtualenv's DVC."""
        return run([*DVC, *args], self.path, self.env, **kw)

    def commit(self, message: str) -> None:
        """Commit every change, as the user does before `dvc exp run`."""
        self.run(["git", "add", "-A"])
        self.run(["git", "commit", "-qm", message])
