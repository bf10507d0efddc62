"""The contract views' answers a build keeps for the report: used for that very file only, with the
views' own types, read-only, and the report made from them is the report made from the views."""
import json
import math
import os
import shutil

import duckdb
import pytest
from dagster import DagsterInstance

from assets.recovery import recover
from pipelines import view_answers
from pipelines.knowledge_base import REQUIRED_VIEWS
from pipelines.settings import Settings
from reports.steering import build_report


def _kb_path(build):
    return Settings(build["landing"], build["data"], None).kb_path


def _release(result, releases):
    """The published cells and the exact counts behind them."""
    cells = json.loads(result.release.read_text())["cells"]
    persons = json.loads((releases / "restricted" / "ohjausryhmaraportti.json").read_text())["cells"]
    return cells, persons


def _same_rows(a: list[tuple], b: list[tuple]) -> bool:
    """The same rows in any order; doubles to rounding (two evaluations of a view may sum in
    another order)."""
    def close(x, y):
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) if isinstance(x, float) and isinstance(y, float) \
            else x == y
    def key(r):
        return tuple(str(v) for v in r if not isinstance(v, float))
    a, b = sorted(a, key=key), sorted(b, key=key)
    return len(a) == len(b) and all(len(r) == len(s) and all(map(close, r, s)) for r, s in zip(a, b))


def _uses_answers(con) -> bool:
    return bool(con.sql("SELECT 1 FROM duckdb_databases() WHERE database_name = 'kept_answers'").fetchall())


def test_build_keeps_the_answers_of_its_file(impact_build):
    kb_path = _kb_path(impact_build)
    direct = duckdb.connect(str(kb_path), read_only=True)
    con = view_answers.connect(kb_path)
    assert _uses_answers(con)
    kept = {n for (n,) in con.sql("SELECT table_name FROM duckdb_tables() WHERE database_name = 'kept_answers' "
                                  "AND schema_name = 'ind'").fetchall()}
    assert kept == set(REQUIRED_VIEWS)
    for view in REQUIRED_VIEWS:  # the views' own column names and types, and their rows
        assert con.sql(f"DESCRIBE ind.{view}").fetchall() == direct.sql(f"DESCRIBE ind.{view}").fetchall(), view
        assert _same_rows(con.sql(f"SELECT * FROM ind.{view}").fetchall(),
                          direct.sql(f"SELECT * FROM ind.{view}").fetchall()), view
    assert con.sql("SELECT count(*) FROM ind.impact_estimates").fetchall() == [(4,)]
    # the views not kept, and the kb tables, are read from the file
    assert con.sql("SELECT count(*) FROM ind.ttk_cohort").fetchall() == \
        direct.sql("SELECT count(*) FROM ind.ttk_cohort").fetchall() != [(0,)]
    assert con.sql("SELECT * FROM kb.build_info").fetchall() == direct.sql("SELECT * FROM kb.build_info").fetchall()
    for sql in ("DELETE FROM ind.cost_savings", "DELETE FROM kept_answers.ind.cost_savings",
                "DELETE FROM kb_file.kb.clients"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    con.close()
    direct.close()


def test_report_from_the_answers_is_the_report_from_the_views(impact_build, tmp_path, monkeypatch):
    kb_path = _kb_path(impact_build)
    kept = build_report(kb_path, tmp_path / "a", releases_dir=tmp_path / "ra")
    with monkeypatch.context() as m:  # as for a file without answers: the views are evaluated
        m.setattr(view_answers, "connect", lambda path: duckdb.connect(str(path), read_only=True))
        evaluated = build_report(kb_path, tmp_path / "b", releases_dir=tmp_path / "rb")
    cells, persons = _release(kept, tmp_path / "ra")
    assert (cells, persons) == _release(evaluated, tmp_path / "rb")
    assert any(k.startswith("impact_estimates/") for k in cells) and len(cells) > 100


def _restamp(answers, kb_path) -> None:
    """Stamp ``answers`` (a copy) with the identity of ``kb_path`` (a copy)."""
    s = kb_path.stat()
    with duckdb.connect(str(answers)) as con:
        con.execute("UPDATE stamp SET inode = ?, size = ?, mtime_ns = ?", [s.st_ino, s.st_size, s.st_mtime_ns])


def test_answers_of_another_file_are_never_used(impact_build, tmp_path):
    """The stamp decides: a copy (another inode), a file written since (modification time, or a
    write-ahead log beside it) or another build (built_at) gets the views evaluated; the answers
    of the very file are used, and they are what the report shows."""
    kb_path = _kb_path(impact_build)
    copy = tmp_path / "tyokyky.duckdb"
    shutil.copy2(kb_path, copy)
    shutil.copy2(view_answers.path_of(kb_path), view_answers.path_of(copy))
    con = view_answers.connect(copy)
    assert not _uses_answers(con)  # another inode
    con.close()

    _restamp(view_answers.path_of(copy), copy)
    with duckdb.connect(str(view_answers.path_of(copy))) as con:  # a tampered answer, to see that it is used
        con.execute("UPDATE ind.cost_savings SET clients = clients * 10")
    con = view_answers.connect(copy)
    assert _uses_answers(con)
    con.close()
    shown = build_report(copy, tmp_path / "a", releases_dir=tmp_path / "ra")
    plain = build_report(kb_path, tmp_path / "b", releases_dir=tmp_path / "rb")
    a, b = _release(shown, tmp_path / "ra")[1], _release(plain, tmp_path / "rb")[1]
    changed = sorted(k for k in a if a[k] != b.get(k))
    assert "cost_savings/TOTAL/clients" in changed and all(k.startswith("cost_savings/") for k in changed), changed

    wal = copy.with_name(copy.name + ".wal")
    wal.write_bytes(b"")  # a session that wrote to the file and did not checkpoint
    con = view_answers.connect(copy)
    assert not _uses_answers(con)
    con.close()
    wal.unlink()

    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # written since
    con = view_answers.connect(copy)
    assert not _uses_answers(con)
    con.close()

    _restamp(view_answers.path_of(copy), copy)
    with duckdb.connect(str(view_answers.path_of(copy))) as con:  # the answers of another build
        con.execute("UPDATE stamp SET built_at = built_at - INTERVAL 1 SECOND")
    con = view_answers.connect(copy)
    assert not _uses_answers(con)
    assert con.sql("SELECT count(*) FROM ind.cost_savings").fetchall() == [(3,)]  # the file's own view
    con.close()

    view_answers.path_of(copy).write_bytes(b"not a database")
    con = view_answers.connect(copy)
    assert not _uses_answers(con)
    con.close()


def test_recovery_removes_what_an_interrupted_build_kept(tmp_path):
    settings = Settings(tmp_path / "landing", tmp_path / "data", None)
    settings.staging.mkdir(parents=True)
    left = view_answers.leftovers(settings.kb_path)
    for path in left:
        path.write_bytes(b"half written")
    with DagsterInstance.ephemeral() as instance:
        notes = recover(instance, settings)
    assert not any(p.exists() for p in left)
    assert "removed tyokyky.view_answers.duckdb.building of an interrupted knowledge-base build" in notes
