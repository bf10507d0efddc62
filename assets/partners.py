"""The partners' staged deliveries: one Dagster asset per partner, partitioned by delivery period.

Thin: one step stages the selected partners' periods with :func:`pipelines.batch.stage_batch`
(one thread pool and one pseudonym memo for all of them, so each identity code is hashed once
per build) and computes their checks. A run covers a range of periods (single-run backfill);
unchanged deliveries are skipped by content hash, so re-running a range is cheap and history
stays backfillable. Partners come from the contracts: a new contract is a new asset.
"""
from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetObservation,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from assets.checks import contract_result, warnings_result
from assets.names import CONTRACT_CHECK, PERIODS, WARNINGS_CHECK, partner_of, staging_key
from assets.resources import TyokykyResource
from assets.run_policy import FILE_SYSTEM_RETRY, no_retry_on_bad_data
from pipelines import quality
from pipelines.batch import stage_batch
from pipelines.data_lock import step_lock
from pipelines.landing import folder_bytes
from schemas import load_contracts

CONTRACTS = load_contracts()


def _spec(partner: str) -> AssetSpec:
    c = CONTRACTS[partner]
    return AssetSpec(staging_key(partner), group_name="staging", kinds={"parquet"},
                     description=f"{c.description}: deliveries read, pseudonymised and validated into "
                                 f"Parquet per period (contract schemas/{partner}.yaml).",
                     metadata={"contract": f"schemas/{partner}.yaml", "delivery": c.delivery})


def _check_specs(partner: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(CONTRACT_CHECK, asset=staging_key(partner), blocking=True,
                           description=f"GX: the {partner} rows staged in this run keep the contract (blocking)."),
            AssetCheckSpec(WARNINGS_CHECK, asset=staging_key(partner),
                           description=f"Softer {partner} findings: overlaps, quarantine share, birth years.")]


@multi_asset(
    name="stage_deliveries",
    specs=[_spec(p) for p in CONTRACTS],
    check_specs=[s for p in CONTRACTS for s in _check_specs(p)],
    partitions_def=PERIODS,
    backfill_policy=BackfillPolicy.single_run(),
    can_subset=True,
    retry_policy=FILE_SYSTEM_RETRY,
)
def stage_deliveries(context: AssetExecutionContext, tyokyky: TyokykyResource):
    """Stage the run's periods of the selected partners, then check what was staged."""
    periods = list(context.partition_keys)
    staged_now: dict[str, list[str]] = {}   # partner -> periods this run staged, for the partners it staged
    with no_retry_on_bad_data(), step_lock(context, tyokyky.settings.data):
        if context.selected_asset_keys:
            contracts = tyokyky.contracts()
            partners = [partner_of(k) for k in context.selected_asset_keys]
            if context.selected_asset_check_keys:
                quality.warm_up(folder_bytes(tyokyky.settings.landing, partners, periods))
            summaries = stage_batch(tyokyky.settings, contracts, tyokyky.key(), {p: periods for p in partners})
            for partner, found in summaries.items():
                yield _materialization(context, partner, found)
                staged_now[partner] = [s["period"] for s in found if s["status"] == "loaded"]
        for check in sorted(context.selected_asset_check_keys, key=lambda k: (k.asset_key.path, k.name)):
            partner = partner_of(check.asset_key)
            # checks of what this run staged; a check whose asset the run did not stage checks the run's periods
            todo = staged_now.get(partner, periods)
            make = contract_result if check.name == CONTRACT_CHECK else warnings_result
            yield make(tyokyky.settings.staging, CONTRACTS[partner], todo)


def _materialization(context: AssetExecutionContext, partner: str, summaries: list[dict]) -> MaterializeResult:
    for s in summaries:
        if s["status"] == "rejected":  # marked on the partition itself in the UI, and logged
            context.log.warning(f"{partner} {s['period']}: delivery {s['file'] or '(none)'} rejected: {s['reason']}")
            context.log_event(AssetObservation(
                asset_key=staging_key(partner), partition=s["period"],
                metadata={k: v for k, v in s.items() if v is not None and k != "period"}))
    staged = [s for s in summaries if s["status"] in ("loaded", "rejected")]
    return MaterializeResult(asset_key=staging_key(partner), metadata={
        "periods_staged": len(staged),
        "periods_unchanged": sum(s["status"] == "unchanged" for s in summaries),
        "deliveries_rejected": sum(s["status"] == "rejected" for s in summaries),
        "rows_loaded": sum(s.get("rows_loaded") or 0 for s in staged),
        "rows_quarantined": sum(s.get("rows_quarantined") or 0 for s in staged),
        "staged": MetadataValue.json(staged),
    })
