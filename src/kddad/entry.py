"""What every entry point shares: read params.yaml, set up logging, report user errors in one line,
end cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kddad import config
from kddad.errors import Interrupted, KddadError, defer_interrupt
from kddad.io import cannot_write, write_failure

log = logging.getLogger("kddad")

#: The signals that end an entry point cleanly: a scheduler's or DVC's SIGTERM, a terminal's Ctrl-C.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM and SIGINT raise :class:`~kddad.errors.Interrupted` in the main thread.

    So the process ends promptly, and every ``finally`` and context manager on the way out runs:
    temporary files go, the MLflow run is marked KILLED. Lightning's own SIGTERM handler (it only
    sets a flag, checked after the batch) calls this one first, which raises at once. A second
    signal while the first one's cleanup runs is ignored: cleanup is short (tracking calls are
    bounded), and raising inside it would leave what it cleans. The previous handlers come back
    when the block ends. Outside the main thread (where Python runs no handler) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        if not defer_interrupt(signum):  # raised when the deferring block (a store write) ends
            raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in ENDING_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


@contextmanager
def signal_exit() -> Iterator[None]:
    """SIGTERM or SIGINT inside the block end the process with one line (``interrupted by SIGTERM``)
    and exit code 128 + the signal's number (143, 130), once its cleanups have run
    (:func:`signals_interrupt`)."""
    with signals_interrupt():
        try:
            yield
        except Interrupted as err:  # also one that arrives while an error is being reported
            log.error("%s", err)
            raise SystemExit(128 + err.signum) from None


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's error (bad config, data, file, store, a full disk) ends the process with one line and
    exit code 2; a signal as :func:`signal_exit` says.

    Anything else is a bug and keeps its traceback.
    """
    with signal_exit():
        try:
            yield
        except KddadError as err:
            log.error("%s", err)
            raise SystemExit(2) from None
        except OSError as err:
            if write_failure(err):  # a write outside the atomic outputs (which name their file)
                log.error("%s", cannot_write(Path(err.filename or "an output"), err))
                raise SystemExit(2) from None
            if err.filename is None:
                raise
            log.error("%s: %s", err.filename, err.strerror or type(err).__name__)
            raise SystemExit(2) from None


def run_stage(stage: Callable[[config.Config], Any], argv: list[str] | None = None) -> None:
    """Validate params.yaml and call ``stage``; user errors print one clear message, exit 2."""
    parser = argparse.ArgumentParser(description=(stage.__doc__ or "").splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="composed config (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with user_errors():
        stage(config.load(args.params))
