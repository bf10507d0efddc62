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
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from assets.automation import REPORT_KEY, build_request, existing_partitions, pending
from assets.checks import PARTNER_CHECKS
from assets.nightly import nightly_job
from assets.partners import PARTNER_ASSETS
from assets.report import steering_report
from assets.resources import TyokykyResource
from assets.warehouse import IND_KEY, KB_KEY, knowledge_base_and_indicators
from pipelines.settings import Settings

build_job = define_asset_job(
    "build_knowledge_base", selection=AssetSelection.assets(KB_KEY, IND_KEY, REPORT_KEY),
    description="Rebuild the knowledge base, indicators and report from staging.")
stage_jobs = [define_asset_job(f"stage_{a.key.path[-1]}", selection=AssetSelection.assets(a.key),
                               partitions_def=a.partitions_def,
                               description=f"Stage {a.key.path[-1]} deliveries (pick periods in the launchpad).")
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


nightly_build = ScheduleDefinition(
    name="nightly_build", cron_schedule="0 2 * * *", execution_timezone="Europe/Helsinki", job=nightly_job,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Nightly: stage new deliveries and rebuild knowledge base, indicators and report.")


defs = Definitions(
    assets=[*PARTNER_ASSETS, knowledge_base_and_indicators, steering_report],
    asset_checks=PARTNER_CHECKS,
    jobs=[build_job, *stage_jobs, nightly_job],
    sensors=[landing_zone_sensor],
    schedules=[nightly_build],
    resources={"tyokyky": TyokykyResource.from_settings(Settings.resolve())},
)
