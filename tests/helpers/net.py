"""Local network ports for the servers tests start (mlflow server, mlflow models serve)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answers(url: str, proc: subprocess.Popen, seconds: float, what: str, log: Callable[[], str]) -> None:
    """Poll ``url`` until it answers; fail with the end of ``log()`` if ``proc`` (the server ``what``)
    exits first or ``seconds`` pass (the server is left to the caller to stop)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not come up:\n{log()[-5000:]}")
            time.sleep(0.5)
