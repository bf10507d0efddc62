"""The Dagster wiring: assets, checks, jobs, sensor and schedule as the UI shows them."""
import pytest
from dagster import AssetKey, DagsterInstance, Definitions, SensorResult, build_sensor_context

from assets.definitions import defs, landing_zone_sensor, nightly_build
from assets.nightly import nightly_job
from assets.resources import TyokykyResource
from tests import handmade
from tests.conftest import kb, rows
from tests.landing_writer import Landing


def test_definitions_load_as_the_ui_loads_them():
    """Every job, including those Dagster derives for sensors and schedules, must resolve."""
    Definitions.validate_loadable(defs)
    jobs = {j.name for j in defs.get_repository_def().get_all_jobs()}
    assert {"build_knowledge_base", "nightly_job", "stage_te", "stage_kela"} <= jobs
    assert nightly_build.job_name == "nightly_job" and nightly_build.cron_schedule == "0 2 * * *"


def test_assets_checks_and_jobs():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    partners = {"ttk", "mittarit", "valmennus", "te", "kela", "typ", "kunta", "suostumukset"}
    assert keys == {f"staging/{p}" for p in partners} | {"knowledge_base", "indicators", "steering_report"}
    for p in partners:
        assert graph.get(AssetKey(["staging", p])).partitions_def.name == f"{p}_deliveries"
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {(f"staging/{p}", "contract") for p in partners} <= checks
    assert {(f"staging/{p}", "quality_warnings") for p in partners} <= checks
    assert defs.resolve_job_def("build_knowledge_base") is not None
    assert defs.resolve_job_def("stage_te") is not None


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    handmade.write(Landing(tmp_path / "landing"))
    monkeypatch.setenv("TYOKYKY_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("TYOKYKY_DATA", str(tmp_path / "data"))
    return tmp_path


def test_sensor_adds_partitions_and_requests_runs_for_new_deliveries(deployment):
    with DagsterInstance.ephemeral() as instance:
        result = landing_zone_sensor(build_sensor_context(instance=instance))
        assert isinstance(result, SensorResult)
        added = {r.partitions_def_name: set(r.partition_keys) for r in result.dynamic_partitions_requests}
        assert added["ttk_deliveries"] == {"2021-02", "2021-03", "2021-05", "2022-07", "2022-09", "2022-10"}
        stage = [r for r in result.run_requests if r.partition_key]
        assert len(stage) == 19
        assert {r.job_name for r in stage} == {
            f"stage_{p}" for p in ("ttk", "mittarit", "valmennus", "te", "kela", "typ", "kunta", "suostumukset")}
        build = [r for r in result.run_requests if not r.partition_key]
        assert len(build) == 1 and build[0].job_name == "build_knowledge_base"
        assert len({r.run_key for r in result.run_requests}) == 20  # one run per delivery version


def test_nightly_job_stages_new_deliveries_and_rebuilds(deployment, session_key_file):
    (deployment / "dagster_home").mkdir()
    resource = TyokykyResource(landing=str(deployment / "landing"), data=str(deployment / "data"),
                               key_file=str(session_key_file))
    with DagsterInstance.local_temp(str(deployment / "dagster_home")) as instance:
        result = nightly_job.execute_in_process(resources={"tyokyky": resource}, instance=instance)
        assert result.success
        assert "2022-12" in instance.get_dynamic_partitions("te_deliveries")
        assert instance.get_materialized_partitions(AssetKey(["staging", "ttk"])) == {
            "2021-02", "2021-03", "2021-05", "2022-07", "2022-09", "2022-10"}
        assert instance.get_latest_materialization_event(AssetKey("knowledge_base")) is not None
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
