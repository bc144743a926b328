"""A process's share of the cores: affinity, a container's quota, torch's threads set and given back."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from kddad import threads


def test_available_cores_follow_the_affinity_mask():
    code = (
        "import os; os.sched_setaffinity(0, {0}); from kddad.threads import available_cores; print(available_cores())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
    assert threads.available_cores() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("cpu_max, cores", [("50000 100000", 1), ("150000 100000", 2), ("max 100000", None)])
def test_a_containers_cpu_quota_caps_the_cores(tmp_path, monkeypatch, cpu_max, cores):
    file = tmp_path / "cpu.max"
    file.write_text(cpu_max + "\n")
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", file)
    affinity = len(os.sched_getaffinity(0))
    assert threads.available_cores() == min(affinity, cores or affinity)


def test_torch_threads_inside_the_block_and_as_before_after(monkeypatch):
    for var in threads.THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    torch.set_num_threads(3)
    try:
        with threads.computing_on(None) as n:
            assert 1 <= n <= threads.available_cores() and torch.get_num_threads() == n
        assert torch.get_num_threads() == 3
        with threads.computing_on(2) as n:
            assert torch.get_num_threads() == n == 2
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(1)


def test_a_busy_neighbour_takes_its_core_from_the_choice():
    """A pure-Python loop in another process holds a core: the cores free now are one fewer."""
    if threads.available_cores() < 2:
        pytest.skip("needs 2 cores")
    code = "from kddad.threads import free_cores; print(free_cores(samples=15))"
    alone = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        beside = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    finally:
        spin.kill()
        spin.wait()
    assert beside < alone or beside == 1


def test_the_users_omp_num_threads_rules_when_nothing_is_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.chosen(None) == torch.get_num_threads()
    assert threads.chosen(2) == 2


def test_workers_split_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 16)
    assert [threads.share(w) for w in (1, 4, 16, 32)] == [16, 4, 1, 1]
