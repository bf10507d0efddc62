"""Per-stage wall time and row counts, for the benchmark (no effect on results).

Stages: read, pseudonymise, stage (validate + write), kb, ind, impact (the TTK impact
comparison of spec v2), report. The build runs
in process, so one process-wide tally serves the whole Dagster run. Deliveries stage
two at a time, so staging seconds add up the time of both threads.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

seconds: dict[str, float] = defaultdict(float)
rows: dict[str, int] = defaultdict(int)
windows: dict[str, list[tuple[float, float]]] = defaultdict(list)  # for peak memory per stage
_lock = threading.Lock()  # deliveries stage in parallel threads


def reset() -> None:
    seconds.clear()
    rows.clear()
    windows.clear()


@contextmanager
def stage(name: str, n_rows: int = 0):
    start = time.perf_counter()
    try:
        yield
    finally:
        end = time.perf_counter()
        with _lock:
            seconds[name] += end - start
            rows[name] += n_rows
            windows[name].append((start, end))


def add_rows(name: str, n: int) -> None:
    with _lock:
        rows[name] += n
