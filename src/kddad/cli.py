"""What every pipelines/*.py driver shares: read params.yaml, set up logging, run one stage."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable

from kddad import config
from kddad.errors import KddadError


def run_stage(stage: Callable[[config.Config], Any], argv: list[str] | None = None) -> None:
    """Validate params.yaml and call ``stage``; user errors print one clear message, exit 2."""
    parser = argparse.ArgumentParser(description=(stage.__doc__ or "").splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="composed config (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        stage(config.load(args.params))
    except KddadError as err:
        logging.getLogger("kddad").error("%s", err)
        sys.exit(2)
