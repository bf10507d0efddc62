"""How much of the machine the pipeline uses, in one place: DuckDB's threads and memory limit,
and how many deliveries stage side by side. The defaults fit the 2-core, 4 GB budget of a
national build; TYOKYKY_THREADS and TYOKYKY_DUCKDB_MEMORY change them for a bigger machine."""
from __future__ import annotations

import os

#: worker threads of each DuckDB connection, and deliveries staged at once (default: the CPUs
#: this process may run on)
THREADS = max(1, int(os.environ.get("TYOKYKY_THREADS") or len(os.sched_getaffinity(0))))
#: DuckDB spills to disk beyond this, so a 1 M-person build stays within its memory budget
DUCKDB_MEMORY = os.environ.get("TYOKYKY_DUCKDB_MEMORY") or "1536MB"


def duckdb_config(**extra) -> dict:
    """Connection settings for every DuckDB the pipeline opens for writing or heavy reading."""
    return {"threads": THREADS, "memory_limit": DUCKDB_MEMORY, **extra}
