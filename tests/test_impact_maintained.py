"""The impact units are maintained from build to build (ind/impact_units.sql): a build over the
previous knowledge base keeps the units of every person whose inputs are unchanged, makes the
units of the others and of every new index month, and ends with what a fresh build makes.

A mark written into the previous units shows which were kept: a kept unit keeps the mark, a unit
made again loses it.

T1  TTK 10.3.2021, 01 from 2020 to 30.6.2021, then 11: treated in 2021-03.
N1  TTK 10.1.2022, 01 from 2020: a control in 2021-03; treated in 2022-01 once as_of is 2023-01-31.
C1  01 throughout, municipal payments: a control; its inputs never change.
C2  01 throughout, until the TE month 2023-01 delivers an 11 spell from 1.9.2021: its inputs change.
"""
import datetime as dt

import duckdb

from pipelines import knowledge_base
from pipelines.settings import Settings
from pseudonymize import load_key_file
from tests.conftest import build, kb
from tests.landing_writer import Landing, hetu
from tests.test_impact_handmade import consent, te, ttk_row

D = dt.date
T1, N1, C1, C2 = hetu(1, 1, 1980, 101), hetu(2, 1, 1981, 201), hetu(3, 1, 1982, 301), hetu(4, 1, 1983, 401)
MARK = 99  # employed_months_12m is 0 … 12: 99 is never made


def _landing(root) -> Landing:
    landing = Landing(root)
    landing.csv("ttk", "2022-12", [ttk_row(T1, D(2021, 3, 10)), ttk_row(N1, D(2022, 1, 10))])
    landing.csv("suostumukset", "2022-12", consent([T1, N1]))
    start = D(2020, 1, 1)
    landing.csv("te", "2022-12", [te(T1, "01", start, D(2021, 6, 30)), te(T1, "11", D(2021, 7, 1)),
                                  te(N1, "01", start), te(C1, "01", start), te(C2, "01", start)])
    landing.kela("2022-12", [(C1, "202006", "TMTU", 20, 40000, 20000), (C1, "202105", "TMTU", 20, 40000, 20000)])
    return landing


def _units(data) -> set[tuple]:
    con = kb(data)
    try:
        return set(con.sql("SELECT role, pseudonym, index_month, employed_months_12m, prior_municipal_cost_eur, "
                           "municipal_cost_change_eur FROM ind.impact_units").fetchall())
    finally:
        con.close()


def _mark(kb_path, pseudonyms) -> None:
    with duckdb.connect(str(kb_path)) as con:
        con.execute(f"UPDATE ind.impact_units SET employed_months_12m = {MARK} WHERE pseudonym IN ?",
                    [list(pseudonyms)])


def test_unchanged_persons_keep_their_units_the_rest_are_made_and_all_equal_a_fresh_build(tmp_path, key_file):
    landing = _landing(tmp_path / "landing")
    data = tmp_path / "data"
    build(landing.root, data, key_file)
    key = load_key_file(key_file)
    t1, n1, c1, c2 = (key.pseudonym(c) for c in (T1, N1, C1, C2))
    first = _units(data)
    assert {(r[0], r[1], r[2].isoformat()[:7]) for r in first} == {
        ("treated", t1, "2021-03"), ("control", n1, "2021-03"), ("control", c1, "2021-03"),
        ("control", c2, "2021-03")}
    kb_path = Settings(landing.root, data, key_file).kb_path
    _mark(kb_path, [c1, c2])

    landing.csv("te", "2023-01", [te(C2, "11", D(2021, 9, 1))])   # as_of 2023-01-31; C2's spells change
    build(landing.root, data, key_file)
    again = _units(data)
    by = {(r[0], r[1], r[2].isoformat()[:7]): r for r in again}
    assert by[("control", c1, "2021-03")][3] == MARK             # C1 unchanged: its unit was kept
    assert by[("control", c2, "2021-03")][3] == 7                # C2 changed: made again (11 from 9.2021)
    assert by[("treated", n1, "2022-01")][3] == 0                # the new index month is made …
    assert by[("control", c1, "2022-01")][3] == 0                # … for unchanged persons too
    assert by[("control", c1, "2022-01")][4:] == (200, -200)     # C1 was paid 200 € in 5.2021, none after

    fresh = tmp_path / "fresh"
    build(landing.root, fresh, key_file)
    made = _units(fresh)
    assert again - made == {by[("control", c1, "2021-03")]}      # the mark is the one difference
    assert {(r[0], r[1], r[2]) for r in again} == {(r[0], r[1], r[2]) for r in made}


def test_units_made_by_other_ind_sql_are_not_kept(tmp_path, key_file, monkeypatch):
    landing = _landing(tmp_path / "landing")
    data = tmp_path / "data"
    build(landing.root, data, key_file)
    key = load_key_file(key_file)
    settings = Settings(landing.root, data, key_file)
    _mark(settings.kb_path, [key.pseudonym(C1)])
    landing.csv("te", "2023-01", [te(C2, "11", D(2021, 9, 1))])
    digest = knowledge_base.sql_digest
    monkeypatch.setattr(knowledge_base, "sql_digest", lambda folder: "other" if folder == "ind" else digest(folder))
    build(landing.root, data, key_file)
    assert MARK not in {r[3] for r in _units(data)}
    con = kb(data)
    try:
        assert con.sql("SELECT ind_sql_sha256 FROM kb.build_info").fetchall() == [("other",)]
        inputs = con.sql("SELECT count(*), count(DISTINCT pseudonym) FROM ind.impact_unit_inputs").fetchall()
        assert inputs == [(4, 4)]   # one digest per person with a reliable code
    finally:
        con.close()
