"""The knowledge base and its indicators as Dagster assets (one atomic build)."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from assets.names import IMPACT_CHECK, IND_KEY, KB_KEY, VIEWS_CHECK, WRITER_POOL, staging_key
from assets.partners import CONTRACTS
from assets.resources import TyokykyResource
from assets.run_policy import FILE_SYSTEM_RETRY, no_retry_on_bad_data
from pipelines import knowledge_base, landing
from pipelines.data_lock import step_lock
from pipelines.impact import SMD_LIMIT, UNMATCHED_LIMIT


@multi_asset(
    specs=[
        AssetSpec(KB_KEY, deps=[staging_key(p) for p in CONTRACTS], group_name="knowledge_base", kinds={"duckdb"},
                  description="DuckDB schema kb: latest record versions, consent applied (spec/knowledge-base.md)."),
        AssetSpec(IND_KEY, deps=[KB_KEY], group_name="knowledge_base", kinds={"duckdb", "sql"},
                  description="DuckDB schema ind: one SQL view per indicator (pipelines/sql/ind/)."),
    ],
    check_specs=[AssetCheckSpec(VIEWS_CHECK, asset=IND_KEY, blocking=True,
                                description="Every indicator of the evaluators' contract exists and answers."),
                 AssetCheckSpec(IMPACT_CHECK, asset=IND_KEY,
                                description=f"Warns when the TTK impact comparison matches weakly: any |smd_after| > "
                                            f"{SMD_LIMIT} or more than {UNMATCHED_LIMIT:.0%} of treated unmatched.")],
    pool=WRITER_POOL,
    retry_policy=FILE_SYSTEM_RETRY,
)
def knowledge_base_and_indicators(context: AssetExecutionContext, tyokyky: TyokykyResource):
    """Build kb and ind into a new file and swap it in only when complete and checked."""
    s = tyokyky.settings
    with no_retry_on_bad_data(), step_lock(context, s.data):
        key = tyokyky.key()
        result = knowledge_base.build(s.staging, s.kb_path, tyokyky.contracts(), key.fingerprint,
                                      knowledge_base.load_parameters(s.parameters_file),
                                      landing_scan=landing.inventory(s.landing, tyokyky.contracts(), s.landing_hashes))
    context.log.info(f"knowledge base built: {result.clients} clients, as_of {result.as_of}")
    yield MaterializeResult(asset_key=KB_KEY, metadata={
        "path": MetadataValue.path(str(result.path)),
        "as_of": str(result.as_of),
        "clients": result.clients,
        "programme_clients": result.programme_clients,
        "awaiting_consent": result.awaiting_consent,
        "withdrawn_erased": result.withdrawn_erased,
        "rows_purged_after_withdrawal": result.purged_rows,
        "tables_carried_forward": ", ".join(result.carried_forward) or "none (full build)",
        "tables_refreshed_by_partner": ", ".join(f"{t} ({', '.join(p)})" for t, p in result.refreshed.items())
                                       or "none",
        "tables_refreshed_by_person": ", ".join(f"{t} ({', '.join(p)})" for t, p in result.refreshed_by_person.items())
                                      or "none",
        "persons_refreshed": result.persons_refreshed,
        "key_fingerprint": key.short_fingerprint,
        **{f"rows_{t}": n for t, n in result.tables.items()},
    })
    yield MaterializeResult(asset_key=IND_KEY, metadata={"views": len(knowledge_base.sql_files("ind"))})
    quality = result.matching  # read with the views, on the finished file opened read-only
    answers = result.views  # counted on the finished file opened read-only, as evaluators open it
    yield AssetCheckResult(asset_key=IND_KEY, check_name=VIEWS_CHECK, passed=all(
                               answers.get(v) is not None for v in knowledge_base.REQUIRED_VIEWS),
                           severity=AssetCheckSeverity.ERROR,
                           metadata={f"rows_{view}": -1 if n is None else n for view, n in answers.items()})
    yield AssetCheckResult(asset_key=IND_KEY, check_name=IMPACT_CHECK, passed=quality.passed,
                           severity=AssetCheckSeverity.WARN,
                           description="; ".join(quality.problems) or "matching balanced",
                           metadata={"matched_treated": quality.treated, "unmatched_treated": quality.unmatched,
                                     "unmatched_share": quality.unmatched_share,
                                     "balance": MetadataValue.md(quality.balance_markdown())})
