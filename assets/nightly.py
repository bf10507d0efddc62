"""The nightly job: stage every new or changed delivery, then rebuild — one run a schedule can start.

Partner assets have a partitioning each, so no single asset job can stage them all; this op
job calls the same plain functions as the assets and the checks, and records the same
materializations, so the UI shows each staged partition and the rebuilt assets.
"""
from dagster import AssetKey, AssetMaterialization, Failure, OpExecutionContext, job, op

from assets.automation import add_missing_partitions, periods_to_stage
from assets.partners import partner_key, stage_periods
from assets.resources import TyokykyResource
from assets.run_policy import FILE_SYSTEM_RETRY, STEP_TAG, no_retry_on_bad_data, wait_for_staging
from assets.warehouse import IND_KEY, KB_KEY
from pipelines import knowledge_base, landing, quality, timing
from pipelines.data_lock import step_lock


@op(description="Stage every new or changed delivery of every partner (contract checks blocking).",
    retry_policy=FILE_SYSTEM_RETRY)
def stage_new_deliveries(context: OpExecutionContext, tyokyky: TyokykyResource) -> list:
    with no_retry_on_bad_data(), step_lock(context, tyokyky.settings.data):
        return _stage_new_deliveries(context, tyokyky)


def _stage_new_deliveries(context: OpExecutionContext, tyokyky: TyokykyResource) -> list:
    wait_for_staging(context.instance, context.run.tags)  # a staging run of the same partner writes the same folders
    s = tyokyky.settings
    contracts = tyokyky.contracts()
    key = tyokyky.key()
    deliveries, warnings = landing.scan(s.landing, contracts, s.landing_hashes)
    for w in warnings:
        context.log.warning(str(w))
    add_missing_partitions(context.instance, deliveries)
    staged = []
    for partner, periods in sorted(periods_to_stage(s, deliveries, contracts, key).items()):
        contract = contracts[partner]
        for summary in stage_periods(tyokyky, contract, periods, context.log):
            context.log_event(AssetMaterialization(
                partner_key(partner), partition=summary["period"],
                metadata={k: v for k, v in summary.items() if v is not None and k != "period"}))
        passed, failures, _, _ = quality.check_contract(s.staging, contract, periods)
        if not passed:
            raise Failure(f"{partner}: blocking contract check failed: {failures}; the knowledge base is not rebuilt",
                          allow_retries=False)
        staged += [f"{partner}/{p}" for p in periods]
    return staged


@op(description="Rebuild knowledge base, indicators and report atomically.", retry_policy=FILE_SYSTEM_RETRY)
def rebuild(context: OpExecutionContext, tyokyky: TyokykyResource, staged: list) -> None:
    with no_retry_on_bad_data(), step_lock(context, tyokyky.settings.data):
        _rebuild(context, tyokyky, staged)


def _rebuild(context: OpExecutionContext, tyokyky: TyokykyResource, staged: list) -> None:
    from reports.steering import build_report

    s = tyokyky.settings
    result = knowledge_base.build(s.staging, s.kb_path, tyokyky.contracts(), tyokyky.key().fingerprint,
                                  knowledge_base.load_parameters(s.parameters_file),
                                  landing_scan=landing.inventory(s.landing, tyokyky.contracts(), s.landing_hashes))
    context.log_event(AssetMaterialization(KB_KEY, metadata={
        "clients": result.clients, "as_of": str(result.as_of), "deliveries_staged": len(staged),
        "tables_carried_forward": ", ".join(result.carried_forward) or "none (full build)"}))
    context.log_event(AssetMaterialization(IND_KEY))
    with timing.stage("report"):
        report = build_report(s.kb_path, s.reports)
    context.log_event(AssetMaterialization(AssetKey("steering_report"), metadata={"path": str(report.path)}))


@job(description="Nightly: stage new or changed deliveries of every partner, then rebuild everything.",
     tags={STEP_TAG: "build"})
def nightly_job():
    rebuild(stage_new_deliveries())
