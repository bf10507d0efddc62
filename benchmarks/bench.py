"""Benchmark: generate N persons, build everything through Dagster, and report per stage.

For each size: the synthetic landing zone is generated (timed), read bare with DuckDB
(CSV / JSON lines / fixed width into tables, XLSX with openpyxl) for the reference
figure, then built in full through Dagster with per-stage wall time, rows per second
and peak memory (RSS sampled every 20 ms), then built again after one new monthly
delivery (incremental). Pseudonymisation throughput and pathway transitions (against
pm4py's discover_dfg, when the optional `bench` extra is installed) are timed apart.
Run by hand (README), never by the test suite.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from benchmarks.reference import bare_read, in_subprocess, timed_synth
from pipelines import timing
from pipelines.settings import Settings
from pipelines.synth import make_codes
from pseudonymize import PseudonymKey, generate_secret_file, pseudonymize_column
from tyokyky.run import run

STAGES = ["landing", "read", "pseudonymise", "stage", "checks", "latest", "kb", "ind", "impact", "report"]


class RssSampler:
    """Resident set size of this process, sampled in a thread."""

    def __init__(self, interval: float = 0.02):
        self.samples: list[tuple[float, int]] = []
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak(self, windows=None) -> int:
        if windows is None:
            return max((r for _, r in self.samples), default=0)
        return max((r for t, r in self.samples if any(a <= t <= b for a, b in windows)), default=0)


def pseudonymisation_rate(n: int = 1_000_000) -> float:
    codes, _, _ = make_codes(np.random.default_rng(0), n)
    arr = pa.array(codes.tolist(), pa.string())
    key = PseudonymKey(os.urandom(32))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        pseudonymize_column(arr, key)
        best = min(best, time.perf_counter() - start)
    return n / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def transitions_vs_pm4py(kb_path: Path, use_pm4py: bool) -> dict:
    con = duckdb.connect(str(kb_path), read_only=True)
    sql = "SELECT * FROM ind.pathway_transitions"
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        con.sql(sql).fetchall()
        best = min(best, time.perf_counter() - start)
    out = {"ours_s": best, "events": con.sql("SELECT count(*) FROM kb.episodes").fetchall()[0][0]}
    if use_pm4py:
        import pm4py

        log = con.sql("""SELECT e.pseudonym AS "case:concept:name", e.service AS "concept:name",
                                e.start_date::TIMESTAMP AS "time:timestamp"
                         FROM kb.episodes e JOIN kb.clients c USING (pseudonym)
                         WHERE c.programme_client AND c.first_ttk_start IS NOT NULL
                         ORDER BY 1, 3, 2""").df()
        out["pm4py_s"] = min(_timed(lambda: pm4py.discover_dfg(log)) for _ in range(3))
        # the same directly-follows counts by SQL over the very same event log, for a like-for-like figure
        same = duckdb.connect()
        same.register("log_df", log)
        same.execute('CREATE TABLE ev AS SELECT "case:concept:name" AS c, "concept:name" AS a, '
                     '"time:timestamp" AS t FROM log_df')
        dfg = ("SELECT a, nxt, count(*), count(DISTINCT c) FROM (SELECT c, a, lead(a) OVER "
               "(PARTITION BY c ORDER BY t, a) AS nxt FROM ev) WHERE nxt IS NOT NULL GROUP BY ALL")
        out["ours_same_log_s"] = min(_timed(lambda: same.sql(dfg).fetchall()) for _ in range(3))
        same.close()
        out["speedup"] = out["pm4py_s"] / best
        out["speedup_same_log"] = out["pm4py_s"] / out["ours_same_log_s"]
    con.close()
    return out


def add_monthly_delivery(landing: Path) -> None:
    """One more TE month (2023-01): last month's spells re-delivered as the new period."""
    last = sorted((landing / "te").iterdir())[-1]
    new = landing / "te" / "2023-01"
    new.mkdir()
    src = next(last.iterdir())
    (new / "te_tilat_202301.csv").write_bytes(src.read_bytes())


def one_size(n: int, work: Path, use_pm4py: bool) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    landing, data = work / "landing", work / "data"
    synth_s, stats = in_subprocess(timed_synth, landing, n)
    bare_s, bare_rows = in_subprocess(bare_read, landing)
    key_file = generate_secret_file(work / "bench.key")
    settings = Settings(landing, data, key_file)
    with RssSampler() as sampler, timing.recording() as tally:
        start = time.perf_counter()
        run(settings, log=lambda *_: None)
        build_s = time.perf_counter() - start
    stages = {s: {"seconds": tally.seconds.get(s, 0.0), "rows": tally.rows.get(s, 0),
                  "peak_rss_mb": sampler.peak(tally.windows.get(s, [])) / 2**20} for s in STAGES}
    hashed = tally.rows.get("hashed", 0)
    peak = sampler.peak() / 2**20
    add_monthly_delivery(landing)
    with timing.recording() as again:
        start = time.perf_counter()
        run(settings, log=lambda *_: None)
        incremental_s = time.perf_counter() - start
    incremental_stages = {s: round(again.seconds.get(s, 0.0), 2) for s in STAGES}
    return {"persons": n, "delivered_rows": stats["rows"], "files": stats["files"], "synth_s": synth_s,
            "bare_read_s": bare_s, "bare_rows": bare_rows, "build_s": build_s, "peak_rss_mb": peak,
            "stages": stages, "distinct_codes_hashed": hashed, "incremental_s": incremental_s,
            "incremental_stages": incremental_stages, "incremental_share": incremental_s / build_s,
            "build_over_bare": build_s / bare_s, "transitions": transitions_vs_pm4py(settings.kb_path, use_pm4py)}


def report(r: dict) -> str:
    lines = [f"\n== {r['persons']:,} persons: {r['delivered_rows']:,} delivered rows in {r['files']} files",
             f"synthetic landing zone        {r['synth_s']:8.1f} s",
             f"bare DuckDB read              {r['bare_read_s']:8.1f} s  ({r['bare_rows'] / r['bare_read_s']:,.0f} rows/s)",
             f"full build through Dagster    {r['build_s']:8.1f} s  peak RSS {r['peak_rss_mb']:,.0f} MB",
             f"  build / bare read           {r['build_over_bare']:8.2f}",
             f"incremental (one TE month)    {r['incremental_s']:8.1f} s  = {100 * r['incremental_share']:.0f} % of full",
             f"{'stage':<14}{'seconds':>9}{'rows':>14}{'rows/s':>14}{'peak MB':>10}"]
    for s in STAGES:
        st = r["stages"][s]
        rate = f"{st['rows'] / st['seconds']:,.0f}" if st["rows"] and st["seconds"] else ""
        lines.append(f"{s:<14}{st['seconds']:9.1f}{st['rows']:14,}{rate:>14}{st['peak_rss_mb']:10,.0f}")
    other = r["build_s"] - sum(r["stages"][s]["seconds"] for s in STAGES)
    lines.append(f"{'(other)':<14}{other:9.1f}   Dagster run and storage, imports")
    lines.append(f"distinct identity codes hashed: {r['distinct_codes_hashed']:,} (once each per build)")
    inc = r["incremental_stages"]
    lines.append("incremental by stage: " + ", ".join(f"{s} {inc[s]:.1f} s" for s in STAGES)
                 + f", other {r['incremental_s'] - sum(inc.values()):.1f} s")
    t = r["transitions"]
    line = f"pathway transitions: {t['ours_s'] * 1000:.1f} ms over {t['events']:,} episodes"
    if "pm4py_s" in t:
        line += (f"; pm4py discover_dfg {t['pm4py_s'] * 1000:.1f} ms ({t['speedup']:.1f}× the view; "
                 f"{t['speedup_same_log']:.1f}× SQL on the same event log, {t['ours_same_log_s'] * 1000:.1f} ms)")
    lines.append(line)
    return "\n".join(lines)


def main(args) -> int:
    results = []
    rate = pseudonymisation_rate()
    print(f"pseudonymisation: {rate:,.0f} distinct codes/s (1 000 000 codes, best of 3, one core)")
    for n in args.persons:
        r = one_size(n, Path(args.work) / str(n), args.pm4py)
        r["pseudonymisation_codes_per_s"] = rate
        print(report(r), flush=True)
        results.append(r)
        if not args.keep:
            shutil.rmtree(Path(args.work) / str(n), ignore_errors=True)
    out = Path(args.work) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {out}")
    return 0


def cli(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    p.add_argument("--persons", type=int, nargs="+", default=[10_000])
    p.add_argument("--work", default="bench-work", help="scratch folder (deleted per size)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--pm4py", action="store_true", help="also time pm4py's discover_dfg (bench extra)")
    return main(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(cli())
