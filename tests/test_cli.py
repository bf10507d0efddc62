"""The command line: one clear line for every user error, never a traceback."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tyokyky.cli import main

EXE = [sys.executable, "-m", "tyokyky.cli"]


def cli(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TYOKYKY_", "DAGSTER_HOME"))}
    full_env.update(env or {})
    return subprocess.run(EXE + list(args), capture_output=True, text=True, env=full_env,
                          cwd=cwd or Path(__file__).parent.parent)


def test_keygen(tmp_path):
    r = cli("keygen", "--out", str(tmp_path / "k.key"))
    assert r.returncode == 0 and stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    r = cli("keygen", "--out", str(tmp_path / "k.key"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "refusing to overwrite" in r.stderr


@pytest.mark.parametrize("setup, message", [
    ("nokey", "no key file given"),
    ("badmode", "readable by group or others"),
    ("nolanding", "is not a readable folder"),
])
def test_run_stops_with_one_line(tmp_path, setup, message):
    key = tmp_path / "k.key"
    cli("keygen", "--out", str(key))
    landing = tmp_path / "landing"
    landing.mkdir()
    args = ["run", "--landing", str(landing), "--data", str(tmp_path / "data"), "--key-file", str(key)]
    if setup == "nokey":
        args = args[:-2]
    elif setup == "badmode":
        os.chmod(key, 0o644)
    elif setup == "nolanding":
        args[2] = str(tmp_path / "missing")
    r = cli(*args)
    assert r.returncode == 1 if setup != "nokey" or True else 2
    assert r.returncode != 0 and message in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "data" / "tyokyky.duckdb").exists()


def test_settings_from_environment(tmp_path):
    r = cli("run", env={"TYOKYKY_LANDING": str(tmp_path / "nowhere"), "TYOKYKY_DATA": str(tmp_path / "d"),
                        "TYOKYKY_KEY_FILE": str(tmp_path / "none.key")})
    assert r.returncode == 1 and "none.key does not exist" in r.stderr


def test_query_is_read_only_and_prints_csv(sample_build, capsys):
    data = str(sample_build["data"])
    assert main(["query", "--data", data, "--csv",
                 "SELECT window_months, clients FROM ind.employment_outcomes ORDER BY 1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["window_months,clients", "0,18", "6,15", "12,12"]
    assert main(["query", "--data", data, "DELETE FROM kb.clients"]) == 2
    err = capsys.readouterr().err
    assert "query failed" in err and "read-only" in err.lower() and err.count("\n") == 1


def test_query_without_database(tmp_path, capsys):
    assert main(["query", "--data", str(tmp_path), "SELECT 1"]) == 2
    assert "no knowledge base" in capsys.readouterr().err


def test_synth_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    r = cli("synth", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "not empty" in r.stderr


def test_the_report_module_is_imported_in_the_background_and_a_failure_stays_silent(tmp_path, monkeypatch, capfd):
    """`tyokyky run` imports the report's modules in a thread while the build runs; a module that
    fails to import there neither raises nor prints (the report step imports it again and says why)."""
    import threading

    from tyokyky.run import REPORT_MODULE, import_in_background

    assert REPORT_MODULE == "reports.steering"
    (tmp_path / "warm_ok.py").write_text("import threading\nIMPORTED_IN = threading.current_thread().name\n")
    (tmp_path / "warm_broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("warm_ok", "warm_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        thread = import_in_background(name)
        thread.join(10)
        assert not thread.is_alive()
    assert sys.modules["warm_ok"].IMPORTED_IN == "import warm_ok" != threading.current_thread().name
    assert "warm_broken" not in sys.modules
    assert capfd.readouterr() == ("", "")
    with pytest.raises(RuntimeError, match="broken on import"):
        __import__("warm_broken")


def test_pipeline_connections_draw_no_progress_bar():
    """DuckDB's progress bar would print into `tyokyky run`'s output during a national build's long
    statements; the pipeline's connections (and their cursors, as staging uses them) turn it off."""
    from pipelines.limits import connect

    with connect() as con, con.cursor() as cursor:
        for c in (con, cursor):
            assert c.sql("SELECT current_setting('enable_progress_bar')").fetchall() == [(False,)]
