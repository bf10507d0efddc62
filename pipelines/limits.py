"""How much of the machine the pipeline uses, in one place: DuckDB's threads and memory limit,
and how many deliveries stage side by side. The defaults fit the 2-core, 4 GB budget of a
national build; TYOKYKY_THREADS, TYOKYKY_DUCKDB_MEMORY and TYOKYKY_STAGING_DUCKDB_MEMORY change them
for a bigger machine."""
from __future__ import annotations

import os

#: worker threads of each DuckDB connection, and deliveries staged at once (default: the CPUs
#: this process may run on)
THREADS = max(1, int(os.environ.get("TYOKYKY_THREADS") or len(os.sched_getaffinity(0))))
#: DuckDB spills to disk beyond this, so a 1 M-person build stays within its memory budget
DUCKDB_MEMORY = os.environ.get("TYOKYKY_DUCKDB_MEMORY") or "1536MB"
#: less while staging: the deliveries' Arrow blocks and the pseudonym memo share the process with it
#: (at 1.5 GB, staging's peak was the whole 1 M-person build's)
STAGING_DUCKDB_MEMORY = os.environ.get("TYOKYKY_STAGING_DUCKDB_MEMORY") or "1GB"


def connect(database: str = ":memory:", read_only: bool = False, **extra):
    """A DuckDB connection within these limits (``extra``: other settings, or other limits), for
    every DuckDB the pipeline opens for writing or heavy reading; without DuckDB's progress bar: a
    national build's long statements would draw it into the run's output and the operators' logs.
    (DuckDB is imported here: the partners' command reads these limits and runs without it.)"""
    import duckdb

    config = {"threads": THREADS, "memory_limit": DUCKDB_MEMORY, **extra}
    con = duckdb.connect(database, read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false")
    return con
