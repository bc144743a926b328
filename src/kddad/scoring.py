"""Score a file of connection records with a trained detector: ``kddad score``.

One output row per input row, in order: ``row`` (0-based record number), ``instance_score``,
``is_outlier`` and, for ``top_k`` > 0, the raw features that drove each score with their share.
The file is streamed in chunks, scored in this process or in worker processes (one per 4 cores
by default) and written in input order to a temporary file renamed at the end, so memory stays bounded and a failure
leaves no partial output.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kddad.data import fields
from kddad.data.audit import EARLY_ROWS, Audit
from kddad.data.records import iter_batches
from kddad.detector import Detector, DetectorError
from kddad.errors import DataError
from kddad.io import atomic_file
from kddad.paths import THRESHOLD_FILE
from kddad.score_chunks import TRUTH_TEXT, ChunkJob, in_order, scorers
from kddad.threads import available_cores, share

log = logging.getLogger(__name__)

OUTPUTS = (".csv", ".parquet", ".gz")
#: How a user goes on past :mod:`kddad.data.audit`'s check when scoring.
ALLOW_HINT = "pass --allow-unknown to score it anyway"


@dataclass
class Summary:
    """What a scoring run did; ``metrics`` only for labelled input."""

    rows: int = 0
    flagged: int = 0
    threshold: float = float("nan")
    seconds: float = 0.0
    output: Path | None = None
    audit: Audit | None = None
    metrics: dict[str, Any] | None = None

    @property
    def unseen(self) -> dict[str, Counter]:
        return self.audit.unseen if self.audit is not None else {}

    def line(self) -> str:
        share = self.flagged / self.rows if self.rows else 0.0
        unseen = sum(sum(c.values()) for c in self.unseen.values())
        extra = ""
        if unseen:
            extra = f", {unseen} unseen categorical values encoded as zeros ({self.audit.unseen_share:.2%} of rows)"
        if self.audit is not None and self.audit.unknown_labels:
            extra += f", {sum(self.audit.unknown_labels.values())} labels of no known attack"
        return (
            f"{self.rows} rows, {self.flagged} flagged ({share:.2%}), threshold {self.threshold:.6g}, "
            f"{self.seconds:.1f} s ({self.rows / max(self.seconds, 1e-9):,.0f} rows/s){extra} → {self.output}"
        )


def load_detector(model: str | Path, threshold: str | Path | None = None, device: str = "auto") -> Detector:
    """The detector at ``model``, ready to score records: with ``threshold`` if given, else the
    threshold saved with it, else the pipeline's ``threshold.json`` beside the detector folder."""
    model = Path(model)
    det = Detector.load(model, device=device)
    if threshold is None and det.threshold is None and (model.parent / THRESHOLD_FILE).is_file():
        threshold = model.parent / THRESHOLD_FILE
        log.info("threshold from %s", threshold)
    if threshold is not None:
        det.use_threshold_file(threshold)
    if det.threshold is None:
        raise DetectorError(f"{model}: the detector holds no threshold; pass one (--threshold models/threshold.json)")
    if det.encoder is None:
        raise DetectorError(f"{model}: the detector has no encoder: it scores encoded arrays, not KDD records")
    return det


def _writer(path: Path, tmp: Path, schema_: pa.Schema, stack: ExitStack):
    import pyarrow.parquet as pq

    return stack.enter_context(pq.ParquetWriter(tmp, schema_))


#: Cores a worker process takes when ``--workers`` is not given: torch spreads a scoring batch
#: well over a few threads of one process, so processes pay only for the cores beyond those.
CORES_PER_WORKER = 4


def default_workers(device: str = "auto") -> int:
    """Worker processes when ``--workers`` is not given: one per :data:`CORES_PER_WORKER`
    available cores on the CPU (so one on a small machine); one on an accelerator, which does the
    scoring's work itself."""
    from kddad.models.neural import resolve_device

    if resolve_device(device).type != "cpu":
        return 1
    return max(1, available_cores() // CORES_PER_WORKER)


def score_file(
    det: Detector,
    input: str | Path,
    output: str | Path,
    *,
    top_k: int = 3,
    chunk_rows: int = 100_000,
    progress: bool = True,
    allow_unknown: bool = False,
    workers: int | None = 1,
    model: str | Path | None = None,
    threshold: str | Path | None = None,
    device: str = "auto",
    ray: str | None = None,
) -> Summary:
    """Score every record of ``input`` into ``output`` (CSV, ``.csv.gz`` or Parquet by suffix).

    ``workers`` > 1: chunks are scored in that many processes, each loading the detector from
    ``model`` (with ``threshold`` and ``device`` as :func:`load_detector` takes them, so they score
    as ``det`` does), while this process reads ahead and writes in input order; the output is the
    same, byte for byte, as with one (None: :func:`default_workers`). ``ray``: the address of a
    Ray cluster (``auto``, ``ray://host:10001``, or ``local`` for a private instance) whose actors
    score instead (:mod:`kddad.score_ray`; ``workers`` None: by the cluster's CPUs).

    A file whose rows mostly hold categories the detector never saw, or labels of no known attack
    (another spelling of the data), stops the run with its likely cause (:mod:`kddad.data.audit`),
    after its first chunk or at the end, and writes nothing; ``allow_unknown`` scores it anyway.
    """
    from tqdm.auto import tqdm

    input, output = Path(input), Path(output)
    if output.suffix not in OUTPUTS:
        raise DataError(f"{output}: unknown output type {output.suffix!r}; expected .csv, .csv.gz or .parquet")
    if output.resolve() == input.resolve():
        raise DataError(f"{output}: the output would overwrite the input; choose another file")
    if workers is None and ray is None:
        workers = default_workers(device)
    if workers is not None and workers < 1:
        raise DataError(f"workers: expected 1 or more, got {workers}")
    if (ray is not None or workers > 1) and model is None:
        raise DetectorError("workers > 1 or ray: pass model=, the detector folder each worker loads")
    if top_k and not det.has_feature_scores:
        log.info("model %s has no per-feature scores: no explanations (top-k 0)", det.model.name)
        top_k = 0
    start = time.perf_counter()
    audit = Audit(str(input))
    summary = Summary(threshold=float(det.threshold), output=output, audit=audit)
    lay, chunks = iter_batches(input, chunk_rows)
    head = list(itertools.islice(chunks, 2))
    if len(head) < 2 and ray is None:
        workers = 1  # one chunk: starting processes would cost more than it saves
    chunks = itertools.chain(head, chunks)
    job = ChunkJob(lay, top_k, output.suffix)
    checked = False
    labels: list[pd.DataFrame] = []
    scores: list[np.ndarray] = []
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_file(output))
        bar = stack.enter_context(tqdm(unit=" rows", unit_scale=True, disable=not progress, desc=input.name))
        if ray is not None:
            from kddad.score_ray import ray_scorers

            pool, fn, workers = stack.enter_context(ray_scorers(model, threshold, device, workers, ray))
        else:
            pool, fn = stack.enter_context(scorers(det, model, threshold, device, workers, share(workers)))
        sink = None if output.suffix == ".parquet" else stack.enter_context(open(tmp, "wb"))
        writer = None
        for scored in in_order(pool, fn, job, chunks, ahead=2 * workers):
            audit.merge(scored.audit)
            if not checked and audit.rows >= EARLY_ROWS:  # most files are alike throughout: stop early
                audit.check(allow_unknown, ALLOW_HINT)
                checked = True
            if sink is not None:
                sink.write(scored.output)
            else:
                if writer is None:
                    writer = _writer(output, tmp, scored.output.schema, stack)
                writer.write_table(scored.output)
            summary.rows += scored.rows
            summary.flagged += scored.flagged
            if scored.truth is not None:
                labels.append(scored.truth)
                scores.append(scored.scores)
            bar.update(scored.rows)
        if summary.rows == 0:
            raise DataError(f"{input}: holds no records (a header and nothing else)")
        audit.check(allow_unknown, ALLOW_HINT)  # before the output takes its name
    log.info("%s: %s", input, audit.summary())
    if summary.unseen:
        log.info(
            "categories unseen in training, encoded as all zeros: %s", {c: dict(v) for c, v in summary.unseen.items()}
        )
    if labels:
        from pandas.api.types import union_categoricals

        from kddad.evaluation import detection_metrics  # here: a worker process imports no scikit-learn

        # the chunks' categories differ in their sets: their union keeps every column categorical
        category, label = (pd.Series(union_categoricals([t[c] for t in labels])) for c in TRUTH_TEXT)
        summary.metrics = detection_metrics(
            np.concatenate([t[fields.IS_OUTLIER].to_numpy() for t in labels]),
            np.concatenate(scores),
            det.threshold,
            category,
            label,
        )
    summary.seconds = time.perf_counter() - start
    return summary


def metrics_lines(m: dict[str, Any]) -> list[str]:
    """A labelled input's figures, as lines for the terminal."""
    lines = [
        f"F1 {m['f1']:.4f}  precision {m['precision']:.4f}  recall {m['recall']:.4f}  "
        f"ROC-AUC {m['roc_auc']:.5f}  FPR {m['fpr']:.4f}  ({m['outliers']} attacks of {m['rows']} rows)"
    ]
    for cat, r in m.get("categories", {}).items():
        if cat == "inliers":
            continue
        roc = f"ROC-AUC {r['roc_auc']:.4f}" if "roc_auc" in r else ""
        size = f"({r['categories']} categories)" if cat == "macro" else f"({r['rows']} rows)"
        lines.append(f"  recall {cat:<8} {r['recall']:.4f}  {roc}  {size}")
    return lines
