"""The nightly job: stage every new or changed delivery, then rebuild — one run a schedule can start.

Partner assets have a partitioning each, so no single asset job can stage them all; this op
job calls the same plain functions as the assets and the checks, and records the same
materializations, so the UI shows each staged partition and the rebuilt assets.
"""
from dagster import AssetKey, AssetMaterialization, Failure, OpExecutionContext, job, op

from assets import checks, knowledge_base, landing, staging, timing
from assets.partners import partner_key, stage_periods
from assets.warehouse import IND_KEY, KB_KEY
from pipelines.resources import TyokykyResource


@op(description="Stage every new or changed delivery of every partner (contract checks blocking).")
def stage_new_deliveries(context: OpExecutionContext, tyokyky: TyokykyResource) -> list:
    s = tyokyky.settings
    contracts = tyokyky.contracts()
    key = tyokyky.key()
    deliveries, warnings = landing.scan(s.landing, contracts, s.landing_hashes)
    for w in warnings:
        context.log.warning(w)
    staged = []
    for partner, contract in contracts.items():
        periods = [d.period for d in deliveries if d.partner == partner
                   and staging.needs_staging(s.staging, d, contract, key)]
        if not periods:
            continue
        name = f"{partner}_deliveries"
        context.instance.add_dynamic_partitions(
            name, sorted(set(periods) - set(context.instance.get_dynamic_partitions(name))))
        for summary in stage_periods(tyokyky, contract, periods, context.log):
            context.log_event(AssetMaterialization(
                partner_key(partner), partition=summary["period"],
                metadata={k: v for k, v in summary.items() if v is not None and k != "period"}))
        frame, total = checks.load_staged(s.staging, partner, periods)
        passed, failures = checks.validate(contract, frame)
        if not passed:
            raise Failure(f"{partner}: blocking contract check failed: {failures}; the knowledge base is not rebuilt")
        staged += [f"{partner}/{p}" for p in periods]
    return staged


@op(description="Rebuild knowledge base, indicators and report atomically.")
def rebuild(context: OpExecutionContext, tyokyky: TyokykyResource, staged: list) -> None:
    from reports.steering import build_report

    s = tyokyky.settings
    result = knowledge_base.build(s.staging, s.kb_path, tyokyky.contracts(), tyokyky.key().fingerprint,
                                  knowledge_base.load_parameters(s.parameters_file))
    context.log_event(AssetMaterialization(KB_KEY, metadata={
        "clients": result.clients, "as_of": str(result.as_of), "deliveries_staged": len(staged),
        "tables_carried_forward": ", ".join(result.carried_forward) or "none (full build)"}))
    context.log_event(AssetMaterialization(IND_KEY))
    with timing.stage("report"):
        report = build_report(s.kb_path, s.reports)
    context.log_event(AssetMaterialization(AssetKey("steering_report"), metadata={"path": str(report.path)}))


@job(description="Nightly: stage new or changed deliveries of every partner, then rebuild everything.")
def nightly_job():
    rebuild(stage_new_deliveries())
