"""One Dagster asset per partner, partitioned by delivery period (dynamic partitions).

Thin: each partition is staged by :func:`pipelines.staging.stage_delivery`. A run may
cover a range of periods (single-run backfill); unchanged deliveries are skipped by
content hash, so re-running a range is cheap and history stays backfillable.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    BackfillPolicy,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.resources import TyokykyResource
from assets.run_policy import FILE_SYSTEM_RETRY, no_retry_on_bad_data
from pipelines import landing, staging
from pipelines.data_lock import step_lock
from pipelines.limits import THREADS
from schemas import Contract, load_contracts

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


def partitions_for(partner: str) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=f"{partner}_deliveries")


def stage_periods(resource: TyokykyResource, contract: Contract, periods: list, log=None) -> list:
    """Stage the given periods of one partner, two at a time while they are small (pyarrow and
    DuckDB release the GIL, so reading, hashing and SQL of two deliveries overlap on two cores).
    Returns a summary per period: counts and reasons, never identifiers."""
    settings = resource.settings
    key = resource.key()
    staging.check_key(settings.staging, key)

    gate = _ByteGate(PARALLEL_BYTES)

    def one(period: str) -> dict:
        delivery = landing.scan_partner(settings.landing, contract, period, settings.landing_hashes)
        if delivery is None:
            return {"period": period, "status": "absent", "note": "no delivery folder; staging kept"}
        if not staging.needs_staging(settings.staging, delivery, contract, key):
            return {"period": period, "status": "unchanged"}
        size = delivery.file.stat().st_size if delivery.file else 0
        with gate.admit(size):
            attempt = staging.stage_delivery(settings.staging, delivery, contract, key)
        return {"period": period, "status": attempt.status, "file": attempt.file,
                "rows_read": attempt.rows_read, "rows_loaded": attempt.rows_loaded,
                "rows_quarantined": attempt.rows_quarantined, "reason": attempt.reason}

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        out = list(pool.map(one, periods))
    for summary in out:  # one event per delivery would cost ~10 ms each in Dagster's storage
        if log and summary["status"] == "rejected":
            log.warning(f"{contract.partner} {summary['period']}: delivery {summary['file'] or '(none)'} "
                        f"rejected: {summary['reason']}")
    return out


def partner_asset(contract: Contract) -> AssetsDefinition:
    @asset(
        name=contract.partner,
        key_prefix=["staging"],
        group_name="staging",
        partitions_def=partitions_for(contract.partner),
        backfill_policy=BackfillPolicy.single_run(),
        description=f"{contract.description}: deliveries read, pseudonymised and validated into "
                    f"Parquet per period (contract schemas/{contract.partner}.yaml).",
        kinds={"parquet"},
        metadata={"contract": f"schemas/{contract.partner}.yaml", "delivery": contract.delivery},
        retry_policy=FILE_SYSTEM_RETRY,
    )
    def _stage(context: AssetExecutionContext, tyokyky: TyokykyResource) -> MaterializeResult:
        with no_retry_on_bad_data(), step_lock(context, tyokyky.settings.data):
            summaries = stage_periods(tyokyky, contract, list(context.partition_keys), context.log)
        for s in summaries:  # a rejected period is marked on the partition itself in the UI
            if s["status"] == "rejected":
                context.log_event(AssetObservation(
                    asset_key=context.asset_key, partition=s["period"],
                    metadata={k: v for k, v in s.items() if v is not None and k != "period"}))
        staged = [s for s in summaries if s["status"] in ("loaded", "rejected")]
        return MaterializeResult(metadata={
            "periods_staged": len(staged),
            "periods_unchanged": sum(s["status"] == "unchanged" for s in summaries),
            "deliveries_rejected": sum(s["status"] == "rejected" for s in summaries),
            "rows_loaded": sum(s.get("rows_loaded") or 0 for s in staged),
            "rows_quarantined": sum(s.get("rows_quarantined") or 0 for s in staged),
            "staged": MetadataValue.json(staged),
        })

    return _stage


PARTNER_ASSETS = [partner_asset(c) for c in load_contracts().values()]


def partner_key(partner: str) -> AssetKey:
    return AssetKey(["staging", partner])
