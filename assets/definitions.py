"""Dagster Definitions: the assets, checks, the one job, the sensor and the schedule of tyokyky.

``dagster dev -m assets.definitions`` (``make ui``) shows them. Paths come from
TYOKYKY_LANDING / TYOKYKY_DATA / TYOKYKY_KEY_FILE, as for the command line.

One way to build: the sensor, the schedule and ``tyokyky run`` all request the ``build`` job
for the plan of :mod:`assets.automation` — one run that stages the new deliveries of every
partner (a range of delivery periods) and then rebuilds knowledge base, indicators and report.
"""

from dagster import (
    AddDynamicPartitionsRequest,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    RunFailureSensorContext,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    in_process_executor,
    run_failure_sensor,
    schedule,
    sensor,
)

from assets import alerts
from assets.automation import add_new_periods, known_periods, plan, run_request
from assets.names import BUILD_JOB, FAILURE_SENSOR, LANDING_SENSOR, NIGHTLY_SCHEDULE, PERIODS, STEP_TAG
from assets.partners import CONTRACTS, stage_deliveries
from assets.report import steering_report
from assets.resources import TyokykyResource
from assets.warehouse import knowledge_base_and_indicators
from pipelines import landing
from pipelines.settings import Settings

ASSETS = [stage_deliveries, knowledge_base_and_indicators, steering_report]

build_job = define_asset_job(
    BUILD_JOB, selection=AssetSelection.assets(*ASSETS), partitions_def=PERIODS, tags={STEP_TAG: "build"},
    description="Stage new or changed deliveries of every partner (pick a range of periods in the launchpad; "
                "unchanged ones are skipped), then rebuild knowledge base, indicators and report.")


def _plan(settings: Settings, instance):
    deliveries, _ = landing.scan(settings.landing, CONTRACTS, settings.landing_hashes)
    known = known_periods(instance)
    return plan(settings, deliveries, CONTRACTS, set(known)), known


@sensor(job=build_job, name=LANDING_SENSOR, minimum_interval_seconds=300, default_status=DefaultSensorStatus.STOPPED,
        description="Watches the landing zone: one run per tick stages every new or changed delivery and rebuilds.")
def landing_zone_sensor(context: SensorEvaluationContext):
    p, known = _plan(Settings.resolve(), context.instance)
    if not p.changed:
        return SkipReason("no new or changed deliveries")
    return SensorResult(run_requests=[run_request(p, known + p.new_periods)],
                        dynamic_partitions_requests=[AddDynamicPartitionsRequest(PERIODS.name, p.new_periods)]
                        if p.new_periods else [])


@schedule(job=build_job, name=NIGHTLY_SCHEDULE, cron_schedule="0 2 * * *", execution_timezone="Europe/Helsinki",
          default_status=DefaultScheduleStatus.STOPPED,
          description="Nightly: the sensor's run, for deployments that poll once a night instead of watching.")
def nightly_build(context: ScheduleEvaluationContext):
    p, _ = _plan(Settings.resolve(), context.instance)
    if not p.changed:
        return SkipReason("no new or changed deliveries")
    return run_request(p, add_new_periods(context.instance, p))


@run_failure_sensor(name=FAILURE_SENSOR, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=15,
                    description="A failed run: a line in DATA/alerts.log and an e-mail (TYOKYKY_SMTP_HOST).")
def alert_on_run_failure(context: RunFailureSensorContext):
    alert = alerts.from_failure(context.instance, context.dagster_run, context.get_step_failure_events(),
                                context.failure_event.message)
    for problem in alerts.notify(Settings.resolve().data, alert):
        context.log.warning(problem)


defs = Definitions(
    assets=ASSETS,
    jobs=[build_job],
    sensors=[landing_zone_sensor, alert_on_run_failure],
    schedules=[nightly_build],
    resources={"tyokyky": TyokykyResource()},   # paths from the environment when a run starts
    # A run is already a process of its own: a subprocess per step would pay the imports (GX ~5 s) again.
    executor=in_process_executor,
)
