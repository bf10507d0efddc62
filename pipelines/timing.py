"""Per-stage wall time and row counts, for the benchmark (no effect on results).

Stages: landing (scan and hash the landing zone), read, pseudonymise, stage (validate +
write), checks (GX and the warning checks), latest (consent and each partner's latest record
versions), kb, ind, impact (the TTK impact comparison of spec v2), report. Nothing is tallied unless someone records:
``with timing.recording() as t:`` makes ``t`` (a :class:`Timings`) the tally that
:func:`stage` adds to, from every thread, until the block ends. Deliveries stage side by
side, so staging seconds add up the time of every thread.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext


class Timings:
    """Seconds, rows and time windows (for peak memory per stage) of each stage."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.rows: dict[str, int] = defaultdict(int)
        self.windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str, n_rows: int = 0):
        start = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            with self._lock:
                self.seconds[name] += end - start
                self.rows[name] += n_rows
                self.windows[name].append((start, end))

    def add_rows(self, name: str, n: int) -> None:
        with self._lock:
            self.rows[name] += n


_recording: list[Timings] = []   # the tally being recorded into, if any


@contextmanager
def recording():
    """Record every stage of the work done inside the block into a new :class:`Timings`."""
    tally = Timings()
    _recording.append(tally)
    try:
        yield tally
    finally:
        _recording.remove(tally)


def stage(name: str, n_rows: int = 0):
    """Time a stage into the recording in progress (nothing when none is)."""
    return _recording[-1].stage(name, n_rows) if _recording else nullcontext()


def add_rows(name: str, n: int) -> None:
    if _recording:
        _recording[-1].add_rows(name, n)
