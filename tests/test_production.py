"""The production instance with its real parts: PostgreSQL (pgserver), dagster-daemon, webserver.

One PostgreSQL server serves the module (a database per test); `tyokyky serve` starts its own.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg2
import pytest
import yaml
from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus, build_sensor_context

from assets.instance import production_config, write_production_config
from pipelines import postgres
from tests import handmade
from tests.conftest import build, kb, rows
from tests.landing_writer import Landing
from tests.privacy import landing_codes

PARTNERS = {"ttk", "mittarit", "valmennus", "te", "kela", "typ", "kunta", "suostumukset"}
TYOKYKY = str(Path(sys.executable).parent / "tyokyky")


@contextmanager
def scratch():
    """A folder outside pytest's base temp: under root, PostgreSQL runs as another user and needs
    every folder above its data traversable, and a concurrent pytest session of the same user
    resets its base temp to mode 0700."""
    root = Path(tempfile.mkdtemp(prefix="tyokyky-test-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg():
    """One embedded PostgreSQL for the module; databases are made per test."""
    with scratch() as root:
        try:
            postgres.start_embedded(root)
        except postgres.PostgresError as e:
            pytest.skip(f"PostgreSQL cannot start on this platform: {e}")
        try:
            yield root
        finally:
            postgres.stop_embedded(root)


def database(pg: Path, name: str) -> str:
    postgres.create_database(postgres.embedded_url(pg, "postgres"), name)
    return postgres.embedded_url(pg, name)


def sql(url: str, query: str) -> list[tuple]:
    con = psycopg2.connect(postgres.libpq_url(url))
    try:
        with con.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def pg_build(pg, tmp_path_factory, session_key_file):
    """The hand-made landing zone built through Dagster on the PostgreSQL-backed instance."""
    root = tmp_path_factory.mktemp("prod")
    handmade.write(Landing(root / "landing"))
    url = database(pg, "build")
    write_production_config(root / "data" / ".dagster", url)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)
        summary = build(root / "landing", root / "data", session_key_file)
    return {"root": root, "url": url, "summary": summary, "home": root / "data" / ".dagster",
            "key_file": session_key_file}


def test_whole_build_is_stored_in_postgres(pg_build):
    home, url = pg_build["home"], pg_build["url"]
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1                               # one run stages every partner and builds
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
        for key in ("knowledge_base", "indicators", "steering_report"):
            assert instance.get_latest_materialization_event(AssetKey(key)) is not None
        # the run's range of periods (the first to the last delivery of any partner) is marked
        ttk = instance.get_materialized_partitions(AssetKey(["staging", "ttk"]))
        assert ttk == set(instance.get_dynamic_partitions("delivery_periods"))
        assert {"2021-02", "2021-03", "2021-05", "2022-07", "2022-09", "2022-10"} <= ttk
        for partner in PARTNERS:
            history = instance.event_log_storage.get_asset_check_execution_history(
                AssetCheckKey(AssetKey(["staging", partner]), "contract"), limit=5)
            statuses = {h.status.value for h in history}   # a ranged run also records one planned per period
            assert "SUCCEEDED" in statuses and "FAILED" not in statuses, partner
    # the rows are in PostgreSQL itself, and no SQLite storage was made beside it
    assert sql(url, "SELECT count(*) FROM runs") == [(1,)]
    assert sql(url, "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")[0][0] \
        >= 3 + 15   # kb, ind, report and every staged delivery
    assert sql(url, "SELECT count(*) FROM asset_check_executions")[0][0] >= 2 * len(PARTNERS)
    assert not list(home.rglob("*.db"))
    con = kb(pg_build["root"] / "data")
    assert rows(con, "SELECT programme_clients FROM kb.build_info") == [{"programme_clients": 3}]
    con.close()


def test_postgres_event_log_holds_no_identity_code(pg_build):
    codes = landing_codes(pg_build["root"] / "landing")
    assert codes
    stored = " ".join(str(r) for table in ("event_logs", "runs", "asset_keys", "asset_check_executions")
                      for r in sql(pg_build["url"], f"SELECT * FROM {table}"))
    assert not [c for c in codes if c in stored]


def test_new_delivery_makes_the_sensor_request_its_run_on_that_instance(pg_build, monkeypatch):
    from assets.definitions import defs, landing_zone_sensor

    root = pg_build["root"]
    Landing(root / "landing").csv("te", "2023-01", [[handmade.P1, "091", "01", "2020-01-01", "", "Helsinki"]])
    monkeypatch.setenv("TYOKYKY_LANDING", str(root / "landing"))
    monkeypatch.setenv("TYOKYKY_DATA", str(root / "data"))
    monkeypatch.setenv("TYOKYKY_KEY_FILE", str(pg_build["key_file"]))
    with DagsterInstance.from_config(str(pg_build["home"])) as instance:
        result = landing_zone_sensor(build_sensor_context(instance=instance))
        assert [(r.partitions_def_name, list(r.partition_keys)) for r in result.dynamic_partitions_requests] == [
            ("delivery_periods", ["2023-01"])]
        [request] = result.run_requests
        assert request.job_name is None   # the sensor's own job: build
        assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) \
            == ("2023-01", "2023-01")
        assert [k.to_user_string() for k in request.asset_selection] == [
            "staging/te", "knowledge_base", "indicators", "steering_report"]

        # run what the sensor asked for, as the daemon would, on the same instance
        instance.add_dynamic_partitions("delivery_periods", ["2023-01"])
        out = defs.resolve_job_def("build").execute_in_process(instance=instance, tags=request.tags,
                                                               asset_selection=request.asset_selection)
        assert out.success
        [stored] = instance.get_runs(limit=1)
        assert stored.job_name == "build" and stored.tags["tyokyky/step"] == "build"   # what the run queue limits
        assert "2023-01" in instance.get_materialized_partitions(AssetKey(["staging", "te"]))
        # nothing new: the sensor skips
        assert "no new or changed deliveries" in str(landing_zone_sensor(build_sensor_context(instance=instance)))


def test_production_config_queue_limits_and_retries():
    config = production_config(None)
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "TYOKYKY_PG_URL"}   # no password in the file
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == 1   # every run writes the one data directory
    assert runs["tag_concurrency_limits"] == [{"key": "tyokyky/step", "value": "build", "limit": 1}]
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}


def test_serve_keeps_a_config_it_did_not_write(tmp_path):
    home = tmp_path / ".dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_production_config(home, "postgresql+psycopg2://postgres:@/dagster?host=/x")
    assert (home / "dagster.yaml.before-serve").read_text() == "telemetry:\n  enabled: false\n"
    assert yaml.safe_load((home / "dagster.yaml").read_text())["storage"]["postgres"]["postgres_url"].endswith("/x")
    write_production_config(home, "postgresql+psycopg2://postgres:@/dagster?host=/y")
    assert (home / "dagster.yaml.before-serve").read_text() == "telemetry:\n  enabled: false\n"


# --- tyokyky serve: the processes themselves ---------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(data: Path, port: int, key_file: Path, env: dict) -> subprocess.Popen:
    # its own process group, as job control would give it: the test can Ctrl-C it alone
    return subprocess.Popen([TYOKYKY, "serve", "--data", str(data), "--key-file", str(key_file), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_line(proc: subprocess.Popen, start: str, seconds: float = 240) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(start):
            return line
        if not line and proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")
    raise AssertionError(f"no line starting {start!r} within {seconds} s")


def tree(pid: int) -> list[psutil.Process]:
    p = psutil.Process(pid)
    return [p, *p.children(recursive=True)]


def gone(procs: list[psutil.Process]) -> bool:
    def alive(p):
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False
    return not any(alive(p) for p in procs)


def small_landing(landing: Landing) -> None:
    """Two partners, three deliveries: enough to see staging side by side and a build after it."""
    landing.csv("ttk", "2021-02", [handmade.ttk(handmade.P1, handmade.D(2021, 1, 1), handmade.D(2021, 2, 1))])
    landing.csv("ttk", "2021-03", [handmade.ttk(handmade.P2, handmade.D(2021, 3, 1), handmade.D(2021, 3, 15))])
    landing.csv("te", "2021-01", [[handmade.P1, "091", "01", "2020-01-01", "", "Helsinki"]])


@pytest.fixture
def deployment(session_key_file):
    with scratch() as root:
        small_landing(Landing(root / "data" / "landing"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TYOKYKY_", "DAGSTER_"))}
        yield root / "data", env, session_key_file


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(1)
    return result


def test_serve_stages_and_builds_in_one_run_and_alerts_on_failure(deployment, pg):
    """Embedded PostgreSQL, daemon and webserver: the sensor's one run goes through the queue and
    stages every partner's deliveries before it builds, then a run submitted through the webserver
    fails on bad setup without a retry and the daemon's sensor alerts.
    (`pg`: skipped where PostgreSQL cannot start, like the other tests here.)"""
    from dagster_graphql import DagsterGraphQLClient

    data, env, key_file = deployment
    home = data / ".dagster"
    port = free_port()
    proc = start_serve(data, port, key_file, env)
    try:
        wait_for_line(proc, "serving:")
        processes = tree(proc.pid)
        assert postgres.embedded_running(data)
        again = subprocess.run([TYOKYKY, "serve", "--data", str(data), "--key-file", str(key_file), "--port",
                                str(free_port())], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already serving" in again.stderr
        dagster_env = dict(env, DAGSTER_HOME=str(home), TYOKYKY_DATA=str(data), TYOKYKY_KEY_FILE=str(key_file))
        subprocess.run([str(Path(sys.executable).parent / "dagster"), "sensor", "start", "landing_zone_sensor",
                        "-m", "assets.definitions"], env=dagster_env, check=True, capture_output=True, timeout=120)
        with DagsterInstance.from_config(str(home)) as instance:
            def all_done():
                records = instance.get_run_records()
                return records if records and all(r.dagster_run.is_finished for r in records) else None
            records = wait_for(all_done, 300, "the sensor's run")
            failures = [e.message for r in records for e in instance.all_logs(r.dagster_run.run_id)
                        if e.dagster_event and e.dagster_event.is_failure]
            assert not failures, failures
            assert [(r.dagster_run.job_name, r.dagster_run.status) for r in records] == [
                ("build", DagsterRunStatus.SUCCESS)]                   # one run: 3 deliveries of 2 partners
            assert {"2021-02", "2021-03"} <= instance.get_materialized_partitions(AssetKey(["staging", "ttk"]))
            staged = instance.get_latest_materialization_event(AssetKey(["staging", "te"])).timestamp
            built = instance.get_latest_materialization_event(AssetKey("knowledge_base")).timestamp
            assert built >= staged                                     # the build came after the staging
        assert (data / "tyokyky.duckdb").exists()

        (data / "parameters.yaml").write_text("no_such_section: {}\n")   # the next build fails on bad setup
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution("build", tags={"dagster/asset_partition_range_start": "2021-02",
                                                            "dagster/asset_partition_range_end": "2021-02"})
        wait_for(lambda: client.get_run_status(run_id) in (DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS),
                 180, "the submitted run to finish")
        assert client.get_run_status(run_id) == DagsterRunStatus.FAILURE
        alerts_log = data / "alerts.log"
        wait_for(alerts_log.exists, 120, "an alert line")
        line = alerts_log.read_text()
        assert f"run {run_id} (build) failed" in line
        assert "knowledge_base" in line and "unknown section 'no_such_section'" in line
        url = postgres.embedded_url(data)
        assert ("tyokyky/step", "build") in sql(url, f"SELECT key, value FROM run_tags WHERE run_id = '{run_id}'")
        assert sql(url, "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'STEP_UP_FOR_RETRY' "
                        f"AND run_id = '{run_id}'") == [(0,)]
        assert {t for (t,) in sql(url, "SELECT daemon_type FROM daemon_heartbeats")} >= {
            "SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"}
    finally:
        stop = subprocess.run([TYOKYKY, "serve", "--stop", "--data", str(data)], env=env, capture_output=True,
                              text=True, timeout=300)
    assert stop.returncode == 0, stop.stderr
    assert proc.wait(timeout=10) == 0
    assert gone(processes) and postgres.embedded_running(data) is None
    assert not (data / "serve.json").exists()


def test_serve_on_an_existing_postgres_stops_on_ctrl_c(deployment, pg):
    data, env, key_file = deployment
    env["TYOKYKY_PG_URL"] = database(pg, "serve_external").replace("postgresql+psycopg2://", "postgresql://")
    port = free_port()
    proc = start_serve(data, port, key_file, env)
    try:
        line = wait_for_line(proc, "serving:")
        assert f"http://127.0.0.1:{port}" in line
        processes = tree(proc.pid)
        assert len(processes) >= 3   # serve, daemon, webserver (and their code servers)
        assert not (data / "postgres").exists()
        config = yaml.safe_load((data / ".dagster" / "dagster.yaml").read_text())
        assert config["storage"]["postgres"]["postgres_url"] == {"env": "TYOKYKY_PG_URL"}
        deadline = time.monotonic() + 60
        while not sql(env["TYOKYKY_PG_URL"], "SELECT count(*) FROM daemon_heartbeats")[0][0]:
            assert time.monotonic() < deadline, "no daemon heartbeat in PostgreSQL"
            time.sleep(1)
        os.killpg(proc.pid, signal.SIGINT)   # Ctrl-C in its terminal
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert gone(processes)
    assert not (data / "serve.json").exists()


def test_serve_errors_are_one_line(deployment, tmp_path):
    data, env, key_file = deployment
    out = subprocess.run([TYOKYKY, "serve", "--data", str(data), "--key-file", str(tmp_path / "none.key")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1 and "none.key" in out.stderr
    env = dict(env, TYOKYKY_PG_URL="postgresql://postgres@127.0.0.1:1/nothing")
    out = subprocess.run([TYOKYKY, "serve", "--data", str(data), "--key-file", str(key_file)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1 and "TYOKYKY_PG_URL" in out.stderr
    out = subprocess.run([TYOKYKY, "serve", "--stop", "--data", str(data)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "not running" in out.stdout


def test_run_on_the_production_instance_without_its_server_is_one_line(tmp_path, key_file, monkeypatch):
    from pipelines.settings import Settings
    from tyokyky.run import BuildStopped, run

    (tmp_path / "landing").mkdir()
    write_production_config(tmp_path / "data" / ".dagster", None)
    settings = Settings(tmp_path / "landing", tmp_path / "data", key_file)
    with pytest.raises(BuildStopped, match="reads its PostgreSQL URL from TYOKYKY_PG_URL, which is not set"):
        run(settings, log=lambda *_: None)
    monkeypatch.setenv("TYOKYKY_PG_URL", "postgresql://tyokyky:s3cret@127.0.0.1:1/dagster")
    with pytest.raises(BuildStopped, match="cannot open the Dagster instance") as stopped:
        run(settings, log=lambda *_: None)
    assert "s3cret" not in str(stopped.value) and "\n" not in str(stopped.value)
