"""The ``kddad`` command: use a trained detector outside the pipeline.

    kddad score --model models/detector --input capture.csv --output scores.csv [--top-k 3]
    kddad info --model models/detector

Messages go to stderr through ``logging``; ``score`` ends with one summary line on stdout.
A user's error (bad file, bad detector) is one line and exit code 2, and leaves no output file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from kddad import __version__
from kddad.entry import user_errors
from kddad.paths import THRESHOLD_FILE, Paths

log = logging.getLogger("kddad")

#: Where the train stage writes the detector (relative to the project)
DETECTOR = Paths().detector


def _score(args: argparse.Namespace) -> None:
    from kddad.scoring import default_workers, load_detector, metrics_lines, score_file

    det = load_detector(args.model, args.threshold, args.device)
    workers = args.workers or (None if args.ray else default_workers(args.device))
    summary = score_file(
        det,
        args.input,
        args.output,
        top_k=args.top_k,
        chunk_rows=args.chunk_rows,
        progress=not args.no_progress,
        allow_unknown=args.allow_unknown,
        workers=workers,
        model=args.model,
        threshold=args.threshold,
        device=args.device,
        ray=args.ray,
    )
    if summary.metrics is not None:
        for line in metrics_lines(summary.metrics):
            log.info("%s", line)
    print(summary.line(), flush=True)


#: What ``kddad info`` shows of :meth:`Detector.describe`, in this order.
SHOWN = ("model", "score", "features", "training_data", "epochs", "kddad_version", "threshold")


def describe(model: Path) -> dict[str, Any]:
    """What a saved detector is: model, features, score, threshold, training data, metrics if known."""
    from kddad.detector import Detector
    from kddad.detector_file import read_threshold

    # everything shown comes from what Detector.load validated (detector.json is read once, there);
    # the training data's file and source are shown as recorded, never opened
    about = Detector.load(model).describe()  # refuses a folder that is not a valid detector
    out: dict[str, Any] = {"detector": str(model), **{k: about[k] for k in SHOWN}}
    thr = model.parent / THRESHOLD_FILE
    if about["threshold"] is None and thr.is_file():
        info = read_threshold(thr)
        out["threshold"] = info["threshold"]
        out["threshold_from"] = str(thr)
        out["threshold_method"] = {k: info[k] for k in ("method", "perc_outlier", "fpr") if k in info}
    metrics = Paths(model.parent.parent).metrics  # the run folder that holds models/detector
    if metrics.is_file():
        from kddad.reports import metrics_file

        m = metrics_file.read(metrics)
        out["metrics"] = {k: m[k] for k in metrics_file.HEADLINE}  # the evaluate stage's headline
        out["metrics_from"] = str(metrics)
    return out


def _info(args: argparse.Namespace) -> None:
    info = describe(Path(args.model))
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        print(f"{key:>16}: {value}")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kddad", description="Use a trained kddad detector on new traffic.")
    ap.add_argument("--version", action="version", version=f"kddad {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "score",
        help="score a file of connection records",
        description="Score KDD Cup 99 (42 columns), NSL-KDD (43) or unlabelled (41) records, with or without a "
        "header row, from .csv/.txt/.gz/.parquet; write one row per record (CSV, or Parquet by suffix).",
    )
    s.add_argument("--model", default=str(DETECTOR), help=f"detector folder (default: {DETECTOR})")
    s.add_argument(
        "--threshold",
        help="threshold file (default: the detector's own, else threshold.json beside the detector folder)",
    )
    s.add_argument("--input", required=True, help="records to score")
    s.add_argument("--output", required=True, help="where to write the scores (.csv, .csv.gz or .parquet)")
    s.add_argument("--top-k", type=int, default=3, help="features per row that explain its score (0: none)")
    s.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    s.add_argument(
        "--workers",
        type=int,
        help="processes that score chunks side by side, each loading the detector once (default: one per 4 cores "
        "this process may use on the CPU, 1 on an accelerator); the output is the same for any number",
    )
    s.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="score on the actors of a Ray cluster: auto (RAY_ADDRESS, else the one `ray start` began; the "
        "default), ray://host:10001, or local (a private instance); --workers actors (default: one per 4 of the "
        "cluster's CPUs), GPUs shared among them where it has some; the detector folder must be readable there",
    )
    s.add_argument("--chunk-rows", type=int, default=100_000, help=argparse.SUPPRESS)
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument(
        "--allow-unknown",
        action="store_true",
        help="score a file even where most rows hold categories the detector never saw or labels of no known "
        "attack, or no row is labelled normal (by default such a file stops the run, naming the likely cause)",
    )
    s.set_defaults(run=_score)

    i = sub.add_parser("info", help="what a trained detector is")
    i.add_argument("--model", default=str(DETECTOR), help=f"detector folder (default: {DETECTOR})")
    i.add_argument("--json", action="store_true", help="as JSON")
    i.set_defaults(run=_info)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if getattr(args, "top_k", 0) < 0:
        parser().error("--top-k: expected 0 or more")
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser().error("--workers: expected 1 or more")
    try:
        with user_errors():
            args.run(args)
            sys.stdout.flush()
    except BrokenPipeError:  # `kddad info | head`: the reader had enough, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit


if __name__ == "__main__":
    main()
