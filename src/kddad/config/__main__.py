"""``python -m kddad.config``: print or write the composition of conf/, or the configuration reference.

``--write params.yaml`` regenerates params.yaml from ``conf/`` exactly as ``dvc exp run`` does
(compose, resolve, ``OmegaConf.to_yaml``); ``--reference docs/configuration.md`` writes the
reference page generated from the schema.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kddad.config.load import compose_yaml


def _write(path: str, text: str) -> None:
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="PATH", help="write the composition here (default: print it)")
    parser.add_argument("--reference", metavar="PATH", help="write the configuration reference (Markdown) here")
    parser.add_argument("--config-dir", default="conf")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. features=all41")
    args = parser.parse_args(argv)
    if args.reference:
        from kddad.config.reference import markdown

        _write(args.reference, markdown(args.config_dir))
        return
    text = compose_yaml(args.config_dir, args.overrides)
    if args.write:
        _write(args.write, text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
