"""The contract views' answers a build leaves for the report: used for that file only, and the
report made from them is the report made by evaluating the views."""
import json
import os
import shutil

import duckdb
import pyarrow.compute as pc

from pipelines import view_answers
from pipelines.knowledge_base import REQUIRED_VIEWS
from pipelines.settings import Settings
from reports.steering import build_report


def _kb_path(build) -> os.PathLike:
    return Settings(build["landing"], build["data"], None).kb_path


def _release(result, releases):
    """The published cells and the exact counts behind them."""
    cells = json.loads(result.release.read_text())["cells"]
    persons = json.loads((releases / "restricted" / "ohjausryhmaraportti.json").read_text())["cells"]
    return cells, persons


def test_build_leaves_the_answers_of_its_file(impact_build):
    kb_path = _kb_path(impact_build)
    direct = duckdb.connect(str(kb_path), read_only=True)
    answers = view_answers.load(kb_path, direct)
    assert sorted(answers) == sorted(REQUIRED_VIEWS)
    for view in REQUIRED_VIEWS:
        assert answers[view].num_rows == direct.sql(f"SELECT count(*) FROM ind.{view}").fetchall()[0][0], view
    assert answers["impact_estimates"].num_rows == 4
    direct.close()
    con = view_answers.connect(kb_path)  # the kept views are their answers; the rest reads the file
    kinds = dict(con.sql("SELECT table_schema || '.' || table_name, table_type FROM information_schema.tables "
                         "WHERE table_catalog = 'memory'").fetchall())
    assert kinds["ind.impact_estimates"] == "BASE TABLE" and kinds["ind.ttk_cohort"] == "VIEW"
    assert kinds["kb.clients"] == "VIEW"
    cohort = con.sql("SELECT count(*) FROM kb_file.ind.ttk_cohort").fetchall()
    assert con.sql("SELECT count(*) FROM ind.ttk_cohort").fetchall() == cohort and cohort[0][0] > 0
    con.close()


def test_report_from_the_answers_is_the_report_from_the_views(impact_build, tmp_path, monkeypatch):
    kb_path = _kb_path(impact_build)
    kept = build_report(kb_path, tmp_path / "a", releases_dir=tmp_path / "ra")
    with monkeypatch.context() as m:
        m.setattr(view_answers, "load", lambda *_: {})  # as for a file without answers: the views are evaluated
        evaluated = build_report(kb_path, tmp_path / "b", releases_dir=tmp_path / "rb")
    cells, persons = _release(kept, tmp_path / "ra")
    assert (cells, persons) == _release(evaluated, tmp_path / "rb")
    assert any(k.startswith("impact_estimates/") for k in cells) and len(cells) > 100


def test_answers_are_used(impact_build, tmp_path, monkeypatch):
    """A kept answer stands in for its view (the report shows it), so the stamp check matters."""
    kb_path = _kb_path(impact_build)
    con = duckdb.connect(str(kb_path), read_only=True)
    answers = view_answers.load(kb_path, con)
    con.close()
    table = answers["cost_savings"]
    tenfold = table.set_column(table.column_names.index("clients"), "clients", pc.multiply(table["clients"], 10))
    monkeypatch.setattr(view_answers, "load", lambda *_: {**answers, "cost_savings": tenfold})
    shown = build_report(kb_path, tmp_path / "a", releases_dir=tmp_path / "ra")
    monkeypatch.undo()
    plain = build_report(kb_path, tmp_path / "b", releases_dir=tmp_path / "rb")
    a, b = _release(shown, tmp_path / "ra")[1], _release(plain, tmp_path / "rb")[1]
    changed = sorted(k for k in a if a[k] != b.get(k))
    assert "cost_savings/TOTAL/clients" in changed and all(k.startswith("cost_savings/") for k in changed), changed


def test_answers_of_another_file_are_not_used(impact_build, tmp_path):
    """A copy, a rebuilt or touched file has another stamp: its report evaluates the views."""
    kb_path = _kb_path(impact_build)
    copy = tmp_path / "tyokyky.duckdb"
    shutil.copy2(kb_path, copy)
    shutil.copytree(view_answers.folder_of(kb_path), view_answers.folder_of(copy))
    con = duckdb.connect(str(copy), read_only=True)
    assert view_answers.load(copy, con) == {}  # another inode
    stamp = view_answers.folder_of(copy) / view_answers.STAMP
    built_at = json.loads(stamp.read_text())["built_at"]
    st = copy.stat()
    stamp.write_text(json.dumps({"inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                 "built_at": built_at}))
    assert sorted(view_answers.load(copy, con)) == sorted(REQUIRED_VIEWS)  # the stamp of this file: used
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert view_answers.load(copy, con) == {}  # written since
    stamp.write_text("not json")
    assert view_answers.load(copy, con) == {}
    con.close()
    assert view_answers.connect(copy).sql("SELECT count(*) FROM duckdb_databases() "
                                          "WHERE database_name = 'kb_file'").fetchall() == [(0,)]
