"""What the benchmark compares against, run in child processes: generating the landing
zone and reading it bare. No Dagster import here, so a child starts quickly and quietly."""
from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import duckdb

from pipelines.synth import write_landing_zone


def in_subprocess(fn, *args):
    """Run ``fn`` in its own process, so that the build's peak memory is its own (an Arrow or
    DuckDB pool keeps what it once held)."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def timed_synth(landing: Path, n: int) -> tuple[float, dict]:
    start = time.perf_counter()
    stats = write_landing_zone(landing, persons=n, seed=1)
    return time.perf_counter() - start, stats


def bare_read(landing: Path) -> tuple[float, int]:
    """DuckDB reading the same delivery files into tables (openpyxl for XLSX): the floor."""
    import openpyxl

    start = time.perf_counter()
    rows = 0
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # it drew into the bench's output at 1 M
    for f in sorted(landing.rglob("*.*")):
        name = str(f).replace("'", "''")
        if f.suffix == ".csv":
            enc = "latin-1" if f.name.startswith("te_") else "utf-8"
            delim = "," if f.name.startswith("kunta_") else ";"
            con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv('{name}', delim='{delim}', "
                        f"header=true, all_varchar=true, encoding='{enc}')")
        elif f.suffix == ".jsonl":
            con.execute(f"CREATE OR REPLACE TABLE t AS SELECT * FROM read_json('{name}', format='newline_delimited')")
        elif f.suffix == ".txt":
            con.execute(f"""CREATE OR REPLACE TABLE t AS
                SELECT substr(l, 1, 11) AS hetu, substr(l, 12, 6) AS month, substr(l, 18, 4) AS benefit,
                       substr(l, 22, 3) AS days, substr(l, 25, 10) AS paid, substr(l, 35, 10) AS share
                FROM read_csv('{name}', columns={{'l': 'VARCHAR'}}, header=false, delim='\\x01',
                              quote='', encoding='latin-1')
                WHERE length(l) = 44""")
        elif f.suffix == ".xlsx":
            wb = openpyxl.load_workbook(f, read_only=True)
            rows += sum(1 for _ in wb["Asiakkaat"].iter_rows(min_row=2, values_only=True))
            wb.close()
            continue
        else:
            continue
        rows += con.sql("SELECT count(*) FROM t").fetchall()[0][0]
    con.close()
    return time.perf_counter() - start, rows


