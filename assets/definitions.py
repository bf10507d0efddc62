"""Dagster Definitions: the assets, checks, jobs, sensor and schedule of tyokyky.

``dagster dev -m assets.definitions`` (``make ui``) shows them. Paths come from
TYOKYKY_LANDING / TYOKYKY_DATA / TYOKYKY_KEY_FILE, as for the command line.
"""

import hashlib

from dagster import (
    AddDynamicPartitionsRequest,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    RunFailureSensorContext,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    run_failure_sensor,
    sensor,
)

from assets import alerts
from assets.automation import REPORT_KEY, build_request, existing_partitions, pending
from assets.checks import PARTNER_CHECKS
from assets.nightly import nightly_job
from assets.partners import PARTNER_ASSETS
from assets.report import steering_report
from assets.resources import TyokykyResource
from assets.run_policy import PARTNER_TAG, STEP_TAG
from assets.warehouse import IND_KEY, KB_KEY, knowledge_base_and_indicators
from pipelines.settings import Settings

build_job = define_asset_job(
    "build_knowledge_base", selection=AssetSelection.assets(KB_KEY, IND_KEY, REPORT_KEY),
    description="Rebuild the knowledge base, indicators and report from staging.", tags={STEP_TAG: "build"})
# The tags are what the production run queue limits (assets/instance.py).
stage_jobs = [define_asset_job(f"stage_{a.key.path[-1]}", selection=AssetSelection.assets(a.key),
                               partitions_def=a.partitions_def,
                               description=f"Stage {a.key.path[-1]} deliveries (pick periods in the launchpad).",
                               tags={STEP_TAG: "stage", PARTNER_TAG: a.key.path[-1]})
              for a in PARTNER_ASSETS]


@sensor(jobs=[*stage_jobs, build_job], minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
        description="Watches the landing zone: new or changed deliveries are staged, then the knowledge base rebuilt.")
def landing_zone_sensor(context: SensorEvaluationContext):
    p = pending(Settings.resolve(), existing_partitions(context.instance))
    if not p.changed and not p.new_partitions:
        return SkipReason("no new or changed deliveries")
    digest = hashlib.sha256("|".join(p.changed).encode()).hexdigest()[:16]
    return SensorResult(
        run_requests=p.stage_requests + ([build_request(f"build/{digest}")] if p.changed else []),
        dynamic_partitions_requests=[AddDynamicPartitionsRequest(name, keys) for name, keys in p.new_partitions.items()],
    )


@run_failure_sensor(name="alert_on_run_failure", default_status=DefaultSensorStatus.RUNNING,
                    minimum_interval_seconds=15,
                    description="A failed run: a line in DATA/alerts.log and an e-mail (TYOKYKY_SMTP_HOST).")
def alert_on_run_failure(context: RunFailureSensorContext):
    alert = alerts.from_failure(context.instance, context.dagster_run, context.get_step_failure_events(),
                                context.failure_event.message)
    for problem in alerts.notify(Settings.resolve().data, alert):
        context.log.warning(problem)


nightly_build = ScheduleDefinition(
    name="nightly_build", cron_schedule="0 2 * * *", execution_timezone="Europe/Helsinki", job=nightly_job,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Nightly: stage new deliveries and rebuild knowledge base, indicators and report.")


defs = Definitions(
    assets=[*PARTNER_ASSETS, knowledge_base_and_indicators, steering_report],
    asset_checks=PARTNER_CHECKS,
    jobs=[build_job, *stage_jobs, nightly_job],
    sensors=[landing_zone_sensor, alert_on_run_failure],
    schedules=[nightly_build],
    resources={"tyokyky": TyokykyResource.from_settings(Settings.resolve())},
    # A run is already a process of its own: a subprocess per step would pay the imports (GX ~5 s) again.
    executor=in_process_executor,
)
