"""Stage a batch of deliveries of every partner: one thread pool, one pseudonym memo.

One call stages everything a build needs (the new or changed deliveries of each partner),
so that each distinct identity code is hashed once per build whatever the number of
monthly files it is in, and deliveries of different partners overlap on the cores.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from pipelines import consent, landing, staging, timing
from pipelines.limits import THREADS
from pipelines.settings import Settings
from pseudonymize import PseudonymKey, PseudonymMemo
from schemas.contract import Contract

#: Deliveries stage side by side only while their files add up to at most this many bytes:
#: a backlog-sized delivery (an initial load) stages alone, so memory stays within budget.
PARALLEL_BYTES = 64 * 2**20


class _ByteGate:
    """Admits work while the bytes in flight stay within a budget (one item always fits)."""

    def __init__(self, budget: int):
        self.budget, self.in_flight = budget, 0
        self.cond = threading.Condition()

    @contextmanager
    def admit(self, size: int):
        with self.cond:
            self.cond.wait_for(lambda: self.in_flight == 0 or self.in_flight + size <= self.budget)
            self.in_flight += size
        try:
            yield
        finally:
            with self.cond:
                self.in_flight -= size
                self.cond.notify_all()


def stage_batch(settings: Settings, contracts: dict[str, Contract], key: PseudonymKey,
                periods: dict[str, list[str]], memo: PseudonymMemo | None = None) -> dict[str, list[dict]]:
    """Stage the given periods of each partner (unchanged deliveries are skipped by content hash).

    Returns, per partner, a summary per period: counts and reasons, never identifiers.
    Pyarrow and DuckDB release the GIL, so reading, hashing and SQL of two deliveries
    overlap on two cores; a large delivery stages alone."""
    staging.check_key(settings.staging, key)
    memo = memo if memo is not None else PseudonymMemo()
    gate = _ByteGate(PARALLEL_BYTES)

    def one(item: tuple[str, str], withdrawal: staging.Withdrawal | None = None) -> dict:
        partner, period = item
        contract = contracts[partner]
        delivery = landing.scan_partner(settings.landing, contract, period, settings.landing_hashes)
        if delivery is None:
            return {"period": period, "status": "absent", "note": "no delivery folder; staging kept"}
        if not staging.needs_staging(settings.staging, delivery, contract, key):
            return {"period": period, "status": "unchanged"}
        size = delivery.file.stat().st_size if delivery.file else 0
        with gate.admit(size):
            attempt = staging.stage_delivery(settings.staging, delivery, contract, key, memo, withdrawal)
        return {"period": period, "status": attempt.status, "file": attempt.file,
                "rows_read": attempt.rows_read, "rows_loaded": attempt.rows_loaded,
                "rows_quarantined": attempt.rows_quarantined, "rows_erased": attempt.rows_erased,
                "reason": attempt.reason}

    # Consent snapshots first: then the rows of persons already withdrawn are never written
    # (otherwise the build would rewrite nearly every staged file of a first load to purge them).
    first = [(p, period) for p in sorted(periods) if contracts[p].consent for period in periods[p]]
    rest = [(p, period) for p in sorted(periods) if not contracts[p].consent for period in periods[p]]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        done = list(pool.map(one, first))
        withdrawal = staging.Withdrawal(*consent.withdrawal_set(settings.staging, contracts))
        done += list(pool.map(lambda item: one(item, withdrawal), rest))
    work = first + rest
    timing.add_rows("hashed", memo.hashed)   # each distinct code once per build (the benchmark shows it)
    out: dict[str, list[dict]] = {p: [] for p in periods}
    for (partner, _), summary in zip(work, done, strict=True):
        out[partner].append(summary)
    return out
