"""Chunks of a file scored by Ray actors, on this machine or a cluster: ``kddad score --ray``.

The same engine as the sweeps' ``hydra/launcher=ray_cluster``. This process still reads the file
(every layout, the line-numbered faults and the audit stay the reader's) and writes the output in
input order; each actor loads the detector from its folder once (a path every node can read:
nothing of ours is pickled) and scores chunks with :func:`kddad.score_chunks.score_chunk`, so the
output is byte for byte that of ``kddad score`` in one process. An actor takes its share of a
node's cores and, where the cluster has GPUs, a share of them (and then scores on CUDA).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from kddad.errors import KddadError

log = logging.getLogger(__name__)

#: ``--ray`` with no address: the cluster this machine belongs to (``RAY_ADDRESS``, else ``ray start``'s).
AUTO = "auto"
#: ``--ray local``: a private Ray instance on this machine, for this command only.
LOCAL = "local"


class ChunkScorer:
    """A Ray actor's state: the detector, loaded once from its folder."""

    def __init__(self, model: str, threshold: str | None, device: str, threads: int) -> None:
        import torch

        from kddad.scoring import load_detector

        torch.set_num_threads(threads)
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.detector = load_detector(model, threshold, "cuda" if device == "auto" and gpus else device)

    def score(self, job: Any, line: int, batch: pa.RecordBatch) -> Any:
        from kddad.score_chunks import score_chunk

        return score_chunk(self.detector, job, line, batch)


class ActorPool(Executor):
    """Chunks handed to the actors in turn; each call a ``concurrent.futures`` future."""

    def __init__(self, actors: list[Any]) -> None:
        self.actors, self.turn = actors, 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:  # fn: the actors' own score
        actor = self.actors[self.turn % len(self.actors)]
        self.turn += 1
        return actor.score.remote(*args).future()


def _connect(address: str) -> None:
    try:
        import ray
    except ImportError:
        raise KddadError("--ray: Ray is not installed here; pip install -e '.[ray]'") from None

    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise KddadError(
            f"--ray {address}: cannot join a Ray cluster ({str(err).splitlines()[0]}); start one with "
            "`ray start --head`, give its address (ray://host:10001), or pass --ray local"
        ) from None


@contextmanager
def ray_scorers(
    model: str | Path, threshold: str | Path | None, device: str, workers: int | None, address: str
) -> Iterator[tuple[ActorPool, None, int]]:
    """Actors on the cluster at ``address``: ``workers`` of them (default: one per 4 of the
    cluster's CPUs), each with its share of the CPUs and GPUs. Yields the pool, no local function,
    and the number of actors."""
    from kddad.scoring import CORES_PER_WORKER

    _connect(address)
    import ray

    try:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), float(resources.get("GPU", 0))
        n = workers or max(1, cpus // CORES_PER_WORKER)
        threads = max(1, cpus // n)
        per_gpu = min(1.0, gpus / n) if gpus and device in ("auto", "cuda") else 0
        remote = ray.remote(num_cpus=min(threads, cpus), num_gpus=per_gpu)(ChunkScorer)
        args = (str(Path(model).resolve()), None if threshold is None else str(Path(threshold).resolve()), device)
        actors = [remote.remote(*args, threads) for _ in range(n)]
        log.info("scoring on %d Ray actor(s), %d CPU(s) and %.2g GPU(s) each", n, threads, per_gpu)
        yield ActorPool(actors), None, n
    finally:
        ray.shutdown()
