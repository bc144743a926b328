"""The one way tests run a command: captured, its exit code checked, its output shown on failure."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run(
    cmd: str | Sequence[str | Path],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    code: int | None = 0,
    timeout: float = 600,
    **kw,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` (a string is split as a shell splits it: a command as a user types it) and
    capture its text output; unless ``code`` is None, assert it exits with ``code``."""
    args = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw)
    if code is not None:
        assert proc.returncode == code, (
            f"{shlex.join(args)} exited {proc.returncode}, not {code}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def output(proc: subprocess.CompletedProcess) -> str:
    """Everything a command printed, stdout then stderr."""
    return proc.stdout + proc.stderr


def one_clear_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2 and a single ERROR line that says each of ``needles``; no traceback."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-4000:]
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-4000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
