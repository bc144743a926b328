"""How many threads a process computes on: the cores it may use that are free when it starts.

torch starts one intra-op thread per core of the machine, whoever else uses them. Threads that
outnumber the free cores wait on each other at every small operation (one of them is always
waiting for its turn on a core a neighbour holds), so a job beside one busy process can run
several times slower than alone. A process here takes the cores it may use (its CPU affinity and
a container's CPU quota) less those other threads want right now (the kernel's run queue), or its
share when it splits them with its own worker processes; ``OMP_NUM_THREADS`` or
``trainer.threads`` override the choice.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

#: The cgroup v2 file that caps a container's CPU time (``<quota> <period>`` or ``max <period>``).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
#: The kernel's load figures; the 4th field is ``<runnable>/<all>`` scheduling entities now.
LOADAVG = "/proc/loadavg"
#: Variables a user sets to choose the threads of every library at once; when set, they rule.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cgroup_cores() -> int | None:
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def available_cores() -> int:
    """The cores this process may run on: its affinity mask, capped by a container's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cores()
    return max(1, min(cores, quota) if quota else cores)


def _runnable() -> int | None:
    """Threads that want a CPU right now, machine-wide (``/proc/loadavg``'s 4th field), this one included."""
    try:
        return int(Path(LOADAVG).read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def free_cores(samples: int = 5, every_s: float = 0.01) -> int:
    """The available cores not busy elsewhere right now: :func:`available_cores` less the other
    threads that want a CPU (the median of a few looks at the run queue), at least 1."""
    seen = []
    for i in range(samples):
        if (n := _runnable()) is None:
            return available_cores()
        seen.append(n)
        if i + 1 < samples:
            time.sleep(every_s)
    others = max(0, sorted(seen)[len(seen) // 2] - 1)
    return max(1, available_cores() - others)


def share(processes: int) -> int:
    """Threads for each of ``processes`` that split this process's cores between them (at least 1)."""
    return max(1, available_cores() // max(1, processes))


def chosen(threads: int | None) -> int:
    """The intra-op threads to use: ``threads`` when given; else what ``OMP_NUM_THREADS`` set when
    the user set it (torch read it at start); else the cores free now (:func:`free_cores`)."""
    import torch

    if threads is not None:
        return threads
    if any(os.environ.get(v) for v in THREAD_VARIABLES):
        return torch.get_num_threads()
    return free_cores()


@contextmanager
def computing_on(threads: int | None) -> Iterator[int]:
    """torch's intra-op threads inside the block (:func:`chosen`), as they were after it."""
    import torch

    before, n = torch.get_num_threads(), chosen(threads)
    if n != before:
        torch.set_num_threads(n)
        log.debug("torch computes on %d thread(s) (%d cores available)", n, available_cores())
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
