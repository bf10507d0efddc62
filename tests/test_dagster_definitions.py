"""The Dagster wiring: assets, checks, jobs, sensor and schedule as the UI shows them."""
import pytest
from dagster import AssetKey, DagsterInstance, SensorResult, build_schedule_context, build_sensor_context

from pipelines.definitions import defs, landing_zone_sensor, nightly_build
from tests import handmade
from tests.landing_writer import Landing


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
        assert {r.asset_selection[0].to_user_string() for r in stage} == {
            f"staging/{p}" for p in ("ttk", "mittarit", "valmennus", "te", "kela", "typ", "kunta", "suostumukset")}
        build = [r for r in result.run_requests if not r.partition_key]
        assert len(build) == 1 and {k.to_user_string() for k in build[0].asset_selection} == {
            "knowledge_base", "indicators", "steering_report"}
        assert len({r.run_key for r in result.run_requests}) == 20  # one run per delivery version


def test_schedule_stages_new_deliveries_and_rebuilds(deployment):
    (deployment / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(deployment / "dagster_home")) as instance:
        requests = nightly_build(build_schedule_context(instance=instance))
        assert len(requests) == 20 and requests[-1].partition_key is None
        assert "2022-12" in instance.get_dynamic_partitions("te_deliveries")


def test_sensor_skips_when_nothing_changed(tmp_path, monkeypatch):
    (tmp_path / "landing").mkdir()
    monkeypatch.setenv("TYOKYKY_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("TYOKYKY_DATA", str(tmp_path / "data"))
    with DagsterInstance.ephemeral() as instance:
        result = landing_zone_sensor(build_sensor_context(instance=instance))
        assert "no new or changed deliveries" in str(result)
