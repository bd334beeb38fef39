"""Timing shared by the benchmark scripts (imported by name: scripts run from this folder)."""

from __future__ import annotations

import time


def time_call(call, repeats: int, warmup: int = 0) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds (all threads) of each of ``repeats`` calls of ``call``.

    CPU time is reported beside wall time because on a shared, oversubscribed machine the wall
    clock mostly measures the other tenants, while CPU time is the work itself.
    """
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu
