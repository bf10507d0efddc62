"""The Dagster wiring: assets, checks, jobs, sensor and schedule as the UI shows them."""
import pytest
from dagster import AssetKey, DagsterInstance, Definitions, SensorResult, build_sensor_context

from assets.definitions import build_job, defs, landing_zone_sensor, nightly_build
from assets.names import PERIODS, RANGE_END_TAG, RANGE_START_TAG
from tests import handmade
from tests.conftest import kb, rows
from tests.landing_writer import Landing


def test_definitions_load_as_the_ui_loads_them():
    """Every job, including those Dagster derives for sensors and schedules, must resolve."""
    Definitions.validate_loadable(defs)
    jobs = {j.name for j in defs.get_repository_def().get_all_jobs() if not j.name.startswith("__")}
    assert jobs == {"build"}   # one way to build: the run command, the sensor and the schedule use it
    assert nightly_build.job_name == "build" and nightly_build.cron_schedule == "0 2 * * *"
    assert landing_zone_sensor.job_name == "build"


def test_assets_checks_and_jobs():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    partners = {"ttk", "mittarit", "valmennus", "te", "kela", "typ", "kunta", "suostumukset"}
    assert keys == {f"staging/{p}" for p in partners} | {"knowledge_base", "indicators", "steering_report"}
    for p in partners:   # one shared period partitioning: one run stages a range of every partner
        assert graph.get(AssetKey(["staging", p])).partitions_def.name == "delivery_periods"
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {(f"staging/{p}", "contract") for p in partners} <= checks
    assert {(f"staging/{p}", "quality_warnings") for p in partners} <= checks
    assert defs.resolve_job_def("build").partitions_def == PERIODS


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    handmade.write(Landing(tmp_path / "landing"))
    monkeypatch.setenv("TYOKYKY_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("TYOKYKY_DATA", str(tmp_path / "data"))
    return tmp_path


def test_sensor_adds_partitions_and_requests_one_run_for_every_new_delivery(deployment):
    """The handmade zone has 19 deliveries of 8 partners in 13 periods: one run stages them all
    (the range from the first to the last period) and rebuilds."""
    with DagsterInstance.ephemeral() as instance:
        result = landing_zone_sensor(build_sensor_context(instance=instance))
        assert isinstance(result, SensorResult)
        [added] = result.dynamic_partitions_requests
        assert added.partitions_def_name == "delivery_periods"
        assert {"2021-02", "2021-03", "2021-05", "2022-07", "2022-09", "2022-10", "2022-12"} <= set(added.partition_keys)
        assert list(added.partition_keys) == sorted(added.partition_keys)
        [run] = result.run_requests
        assert run.tags[RANGE_START_TAG] == added.partition_keys[0]
        assert run.tags[RANGE_END_TAG] == added.partition_keys[-1]
        assert run.tags["tyokyky/step"] == "build"
        assert {k.to_user_string() for k in run.asset_selection} == {
            *(f"staging/{p}" for p in ("ttk", "mittarit", "valmennus", "te", "kela", "typ", "kunta", "suostumukset")),
            "knowledge_base", "indicators", "steering_report"}


def test_the_build_job_stages_a_range_and_rebuilds(deployment, session_key_file, monkeypatch):
    """What the sensor requests, run as the daemon would run it (settings from the environment)."""
    (deployment / "dagster_home").mkdir()
    monkeypatch.setenv("TYOKYKY_KEY_FILE", str(session_key_file))
    with DagsterInstance.local_temp(str(deployment / "dagster_home")) as instance:
        [request] = landing_zone_sensor(build_sensor_context(instance=instance)).run_requests
        [added] = landing_zone_sensor(build_sensor_context(instance=instance)).dynamic_partitions_requests
        instance.add_dynamic_partitions(PERIODS.name, list(added.partition_keys))
        job = defs.resolve_job_def(build_job.name)
        result = job.execute_in_process(instance=instance, tags=request.tags, asset_selection=request.asset_selection)
        assert result.success
        assert {"2021-02", "2021-03", "2021-05", "2022-07", "2022-09", "2022-10"} <= \
            instance.get_materialized_partitions(AssetKey(["staging", "ttk"]))
        assert instance.get_latest_materialization_event(AssetKey("knowledge_base")) is not None
        checks = {(c.asset_key.path[-1], c.check_name, c.passed) for c in result.get_asset_check_evaluations()}
        assert ("te", "contract", True) in checks and ("knowledge_base", "contract_views_answer", True) not in checks
        assert ("indicators", "contract_views_answer", True) in checks
        # the deliveries are staged: the sensor has nothing more to ask for
        assert "no new or changed deliveries" in str(landing_zone_sensor(build_sensor_context(instance=instance)))
    con = kb(deployment / "data")
    assert rows(con, "SELECT programme_clients FROM kb.build_info") == [{"programme_clients": 3}]
    con.close()
    assert list((deployment / "data" / "reports").glob("ohjausryhmaraportti_*.pdf"))


def test_sensor_skips_when_nothing_changed(tmp_path, monkeypatch):
    (tmp_path / "landing").mkdir()
    monkeypatch.setenv("TYOKYKY_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("TYOKYKY_DATA", str(tmp_path / "data"))
    with DagsterInstance.ephemeral() as instance:
        result = landing_zone_sensor(build_sensor_context(instance=instance))
        assert "no new or changed deliveries" in str(result)
