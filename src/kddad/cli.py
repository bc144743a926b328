"""What every entry point shares: read params.yaml, set up logging, report user errors in one line."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kddad import config
from kddad.errors import KddadError

log = logging.getLogger("kddad")


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's error (bad config, data, file, store) ends the process with one line and exit code 2.

    Anything else is a bug and keeps its traceback.
    """
    try:
        yield
    except KddadError as err:
        log.error("%s", err)
        raise SystemExit(2) from None
    except OSError as err:
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
