"""Errors users see: each names the file, row or key at fault and what was expected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class KddadError(Exception):
    """Base for every error the pipeline reports to a user without a traceback."""


class ConfigError(KddadError):
    """The composed configuration has an unknown key or an impossible value."""


class DetectorError(KddadError):
    """A detector file is missing, tampered with, or does not fit the data it is given."""


class DataError(KddadError):
    """An input data file does not have the expected KDD layout or values."""


class DownloadError(KddadError):
    """No source gave a verified copy of a raw data file."""


class TrackingError(KddadError):
    """The MLflow tracking store cannot be reached or used."""


class OutputError(KddadError):
    """A stage cannot write where its outputs go (permissions, a file where a folder should be)."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived: raised in the main thread so every ``finally`` and context manager
    cleans up (temporary files, the MLflow run). A BaseException, like KeyboardInterrupt: no
    ``except Exception`` that records a failure and carries on (a sweep job, a retry) swallows it."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class _Deferral:
    """The open :func:`interrupts_deferred` blocks, and the first signal held by them."""

    depth = 0
    held: int | None = None


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """An :class:`Interrupted` that a signal would raise inside the block is raised when it ends.

    For work a signal must not cut in half: a write to a local SQLite store stopped mid-commit
    keeps its lock, and the run could then never be marked KILLED. The signal handler asks
    :func:`defer_interrupt` first.
    """
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
        if _Deferral.depth == 0 and _Deferral.held is not None:
            signum, _Deferral.held = _Deferral.held, None
            raise Interrupted(signum)  # also over the block's own error: the signal ends the process


def defer_interrupt(signum: int) -> bool:
    """Hold ``signum`` until the outermost :func:`interrupts_deferred` block ends, if one is open."""
    if _Deferral.depth == 0:
        return False
    if _Deferral.held is None:
        _Deferral.held = signum
    return True
