"""One chunk of a file scored: checked, encoded, scored, explained and serialised, where it runs.

The same function scores a chunk in the ``kddad score`` process, in its worker processes
(``--workers``), so every number of workers writes the same bytes
for the same rows. A worker process loads the detector from its folder once (nothing of ours is
pickled) and computes on its share of the cores (:mod:`kddad.threads`).
"""

from __future__ import annotations

import gzip
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from kddad.data import fields
from kddad.data.audit import Audit
from kddad.data.records import Layout, frame
from kddad.detector import Detector
from kddad.errors import KddadError

#: A labelled chunk's text columns the metrics need, kept categorical.
TRUTH_TEXT = (fields.CATEGORY, fields.LABEL)


@dataclass(frozen=True)
class ChunkJob:
    """What scoring a chunk needs besides the detector: where it came from and how to write it."""

    layout: Layout
    top_k: int
    output: str  # an output suffix of kddad.scoring: ".csv", ".gz" or ".parquet"


@dataclass
class Scored:
    """A scored chunk: its output (CSV bytes, gzipped for ``.gz``, or an Arrow table for Parquet),
    counts, the chunk's audit, and for labelled input the truth and scores the metrics need."""

    rows: int
    flagged: int
    output: bytes | pa.Table
    audit: Audit
    scores: np.ndarray | None = None
    truth: pd.DataFrame | None = None


def output_table(det: Detector, df: pd.DataFrame, top_k: int, where: str) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The output rows of checked records ``df``: ``row``, ``instance_score``, ``is_outlier`` and
    the top-k explanations; with the instance scores and flags."""
    X = det.encoder.transform(df, where, report_unknown=False)
    pred = det.predict(X)
    out = pd.DataFrame(
        {"row": df.index.to_numpy(np.int64), "instance_score": pred.instance_score, "is_outlier": pred.is_outlier}
    )
    if top_k:
        out = pd.concat([out, det.explain(df, top_k, prediction=pred).reset_index(drop=True)], axis=1)
    return pa.Table.from_pandas(out, preserve_index=False), pred.instance_score, pred.is_outlier


def csv_bytes(table: pa.Table, header: bool, gzipped: bool) -> bytes:
    """A table as CSV text; ``gzipped``: one gzip member (members concatenate into one valid file)."""
    from pyarrow import csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=header))
    data = sink.getvalue().to_pybytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if gzipped else data


def score_chunk(det: Detector, job: ChunkJob, line: int, batch: pa.RecordBatch) -> Scored:
    """Score one chunk read by :func:`kddad.data.records.iter_batches` (``line``: its first record's)."""
    where = str(job.layout.path)
    df = frame(batch, job.layout, line)
    audit = Audit(where)
    audit.add(df, det.encoder.categories)
    table, scores, flags = output_table(det, df, job.top_k, where)
    first = line == 1 + int(job.layout.header)
    out = table if job.output == ".parquet" else csv_bytes(table, header=first, gzipped=job.output == ".gz")
    scored = Scored(len(df), int(flags.sum()), out, audit)
    if job.layout.labelled:
        scored.scores = scores
        # categorical: compact across processes and in memory
        scored.truth = df[[fields.IS_OUTLIER, *TRUTH_TEXT]].astype(dict.fromkeys(TRUTH_TEXT, "category"))
    return scored


# -- worker processes ------------------------------------------------------------------------
_WORKER: dict[str, Detector] = {}
#: Linux's ``prctl`` option that signals a process when the thread that started it ends.
PR_SET_PDEATHSIG = 1
#: How often a worker looks whether the process that started it is still there.
PARENT_POLL_S = 0.5


def _die_with(parent: int) -> None:
    """End this worker when ``parent`` dies, however it dies (``kill -9`` included): the kernel's
    parent-death signal on Linux, and a thread that watches the parent's pid everywhere (also for a
    parent that died before the signal was asked for)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGKILL)  # at once: no cleanup that could touch the parent's files

    threading.Thread(target=watch, name="kddad-parent-watch", daemon=True).start()


def _start_worker(model: str, threshold: str | None, device: str, threads: int, parent: int) -> None:
    """A worker's start: it ends with the process that started it; the terminal's Ctrl-C is the
    parent's to handle; the detector loaded once."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)
    from kddad.scoring import load_detector

    _WORKER["detector"] = load_detector(model, threshold, device)


def _score_in_worker(job: ChunkJob, line: int, batch: pa.RecordBatch) -> Scored:
    return score_chunk(_WORKER["detector"], job, line, batch)


@contextmanager
def scorers(
    det: Detector, model: str | Path, threshold: str | Path | None, device: str, workers: int, threads: int
) -> Iterator[tuple[Executor, Callable[..., Scored]]]:
    """An executor and the function it runs on each chunk: one thread beside this process (which
    reads the next chunk meanwhile) scoring with ``det``, or ``workers`` processes (spawned: safe
    beside threads and CUDA) that each load the detector from ``model``."""
    if workers == 1:
        with ThreadPoolExecutor(1, thread_name_prefix="kddad-score") as pool:
            yield pool, partial(score_chunk, det)
        return
    args = (str(model), None if threshold is None else str(threshold), device, threads, os.getpid())
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker, initargs=args)
    try:
        yield pool, _score_in_worker
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def in_order(
    pool: Executor, fn: Callable[..., Scored], job: ChunkJob, chunks: Iterable[tuple[int, pa.RecordBatch]], ahead: int
) -> Iterator[Scored]:
    """Each chunk's result in input order, with at most ``ahead`` chunks in flight (bounded memory)."""
    pending: deque[Future] = deque()
    try:
        for line, batch in chunks:
            pending.append(pool.submit(fn, job, line, batch))
            if len(pending) >= ahead:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        for future in pending:
            future.cancel()


def _result(future: Future) -> Scored:
    try:
        return future.result()
    except BrokenProcessPool:
        raise KddadError(
            "a scoring worker process died (out of memory, or killed); try fewer --workers or a smaller --chunk-rows"
        ) from None
    except Exception as err:
        cause = getattr(err, "cause", None)  # a Ray task's error wraps the one the actor raised
        if isinstance(cause, KddadError):
            raise cause from None
        if type(err).__name__ in ("RayActorError", "ActorDiedError", "ActorUnavailableError"):
            raise KddadError(f"a Ray scoring actor died ({str(err).splitlines()[0]}); try fewer --workers") from None
        raise
