"""The steering-group PDF report as a Dagster asset (downstream of the indicators)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.names import IND_KEY, REPORT_KEY
from assets.resources import TyokykyResource
from assets.run_policy import FILE_SYSTEM_RETRY, no_retry_on_bad_data
from pipelines import timing
from pipelines.data_lock import step_lock


@asset(key=REPORT_KEY, deps=[IND_KEY], group_name="reports", kinds={"pdf"},
       description="Finnish steering-group report (PDF), small cells suppressed, counts rounded, "
                   "recorded in the release log.", retry_policy=FILE_SYSTEM_RETRY)
def steering_report(context: AssetExecutionContext, tyokyky: TyokykyResource) -> MaterializeResult:
    from reports.steering import build_report

    s = tyokyky.settings
    with timing.stage("report"), no_retry_on_bad_data(), step_lock(context, s.data):
        result = build_report(s.kb_path, s.reports)
    context.log.info(f"report written: {result.path.name}")
    return MaterializeResult(metadata={"path": MetadataValue.path(str(result.path)), "pages": result.pages,
                                       "release_record": MetadataValue.path(str(result.release)),
                                       "differencing_flags": result.differencing_flags})
