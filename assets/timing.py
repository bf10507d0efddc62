"""Per-stage wall time and row counts, for the benchmark (no effect on results).

Stages: read, pseudonymise, stage (validate + write), kb, ind, report. The build runs
in process, so one process-wide tally serves the whole Dagster run.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

seconds: dict[str, float] = defaultdict(float)
rows: dict[str, int] = defaultdict(int)
windows: dict[str, list[tuple[float, float]]] = defaultdict(list)  # for peak memory per stage


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
        seconds[name] += end - start
        rows[name] += n_rows
        windows[name].append((start, end))
