"""Every Dagster name of tyokyky in one place: assets, checks, the job, partitions, tags.

The UI, the sensor, the schedule, the command line and the tests refer to these, never to
string literals of their own.
"""
from dagster import AssetKey, DynamicPartitionsDefinition

#: Delivery periods (YYYY-MM) of every partner: one partitioning shared by all partner assets,
#: so that one run can stage a range of periods of every partner and then rebuild.
PERIODS = DynamicPartitionsDefinition(name="delivery_periods")

KB_KEY = AssetKey("knowledge_base")
IND_KEY = AssetKey("indicators")
REPORT_KEY = AssetKey("steering_report")
STAGING_PREFIX = "staging"


def staging_key(partner: str) -> AssetKey:
    return AssetKey([STAGING_PREFIX, partner])


def partner_of(key: AssetKey) -> str:
    return key.path[-1]


BUILD_JOB = "build"                 # stage what changed, then knowledge base, indicators, report
LANDING_SENSOR = "landing_zone_sensor"
FAILURE_SENSOR = "alert_on_run_failure"
NIGHTLY_SCHEDULE = "nightly_build"

CONTRACT_CHECK = "contract"                 # blocking, per partner (GX)
WARNINGS_CHECK = "quality_warnings"         # warning, per partner
VIEWS_CHECK = "contract_views_answer"       # blocking, on the indicators
IMPACT_CHECK = "impact_matching"            # warning, on the indicators

WRITER_POOL = "duckdb_writer"               # DuckDB allows one writer: builds never overlap

STEP_TAG = "tyokyky/step"                   # "build": what the production run queue limits
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
