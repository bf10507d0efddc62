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
import copy
import datetime as dt
import random

import duckdb
import pytest

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
    with duckdb.connect(str(settings.kb_path), read_only=True) as con:
        [(before,)] = con.sql("SELECT ind_sql_sha256 FROM kb.build_info").fetchall()
    _mark(settings.kb_path, [key.pseudonym(C1)])
    landing.csv("te", "2023-01", [te(C2, "11", D(2021, 9, 1))])
    digest = knowledge_base.sql_digest
    monkeypatch.setattr(knowledge_base, "sql_digest", lambda folder: "other" if folder == "ind" else digest(folder))
    build(landing.root, data, key_file)
    assert MARK not in {r[3] for r in _units(data)}
    con = kb(data)
    try:
        assert con.sql("SELECT ind_sql_sha256 FROM kb.build_info").fetchall() != [(before,)]
        inputs = con.sql("SELECT count(*), count(DISTINCT pseudonym) FROM ind.impact_unit_inputs").fetchall()
        assert inputs == [(4, 4)]   # one digest per person with a reliable code
    finally:
        con.close()


# The same claim on the SQL alone, over random small knowledge bases: a chain of states, each built
# over the previous one, gives the units a from-scratch run gives on the last state.
UNITS_SQL = (knowledge_base.HERE / "sql" / "ind" / "impact_units.sql").read_text()
COHORT_SQL = (knowledge_base.HERE / "sql" / "ind" / "ttk_cohort.sql").read_text()
LO, HI = D(2019, 1, 1), D(2023, 12, 31)


def _load(con, state) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS kb; CREATE SCHEMA IF NOT EXISTS ind")
    con.execute("""CREATE OR REPLACE TABLE kb.clients (pseudonym VARCHAR, birth_year SMALLINT, sex VARCHAR,
        municipality VARCHAR, temporary_id BOOLEAN, programme_client BOOLEAN, first_ttk_start DATE,
        first_coaching_start DATE)""")
    con.execute("""CREATE OR REPLACE TABLE kb.status_spells (pseudonym VARCHAR, status VARCHAR, start_date DATE,
        end_date DATE, municipality VARCHAR)""")
    con.execute("""CREATE OR REPLACE TABLE kb.benefits (pseudonym VARCHAR, month DATE, benefit VARCHAR,
        days SMALLINT, paid_eur DECIMAL(14, 2), municipal_share_eur DECIMAL(14, 2))""")
    con.execute("CREATE OR REPLACE TABLE kb.build_info AS SELECT ?::DATE AS as_of", [state["as_of"]])
    for table, rows_ in (("clients", state["clients"]), ("status_spells", state["spells"]),
                         ("benefits", state["benefits"])):
        if rows_:
            con.executemany(f"INSERT INTO kb.{table} VALUES ({', '.join('?' * len(rows_[0]))})", rows_)
    con.execute(COHORT_SQL)


def _units_after(states) -> list[tuple]:
    con = duckdb.connect()
    try:
        for state in states:
            _load(con, state)
            con.execute(UNITS_SQL)
        return sorted(con.sql("SELECT * FROM ind.impact_units").fetchall(), key=repr)
    finally:
        con.close()


def _day(r: random.Random) -> dt.date:
    return LO + dt.timedelta(days=r.randrange((HI - LO).days + 1))


def _spell(r: random.Random, p: str) -> tuple:
    start = _day(r)
    end = None if r.random() < 0.3 else start + dt.timedelta(days=r.randrange(1, 700))
    return (p, r.choice(["01", "01", "02", "10", "11"]), start, end, "x")


def _state(r: random.Random, n: int) -> dict:
    state = {"clients": [], "spells": [], "benefits": [], "as_of": _day(r)}
    for i in range(n):
        p, programme = f"p{i}", r.random() < 0.4
        state["clients"].append((p, None if r.random() < 0.1 else 1975 + r.randrange(15),
                                 None if r.random() < 0.1 else r.choice("MF"), "x", r.random() < 0.1, programme,
                                 _day(r) if programme and r.random() < 0.8 else None,
                                 _day(r) if r.random() < 0.2 else None))
        state["spells"] += [_spell(r, p) for _ in range(r.randrange(4))]
        state["benefits"] += [(p, _day(r).replace(day=1), r.choice(["TMTU", "TOTU", "PPR"]), 20, 10,
                               r.choice([5, 12.5, 100])) for _ in range(r.randrange(4))]
    return state


def _change(r: random.Random, state: dict) -> dict:
    new = copy.deepcopy(state)
    if r.random() < 0.7:
        new["as_of"] = state["as_of"] + dt.timedelta(days=r.choice([-62, -31, 31, 31, 62, 400]))
    for _ in range(r.randrange(4)):
        i = r.randrange(len(new["clients"]))
        c = list(new["clients"][i])
        kind = r.randrange(6)
        if kind == 0:
            c[4] = not c[4]                      # temporary code
        elif kind == 1:
            c[5] = not c[5]                      # programme client
        elif kind == 2:
            c[6] = _day(r) if r.random() < 0.8 else None   # first TTK start
        elif kind == 3:
            c[7] = _day(r) if r.random() < 0.5 else None   # first coaching start
        elif kind == 4:
            new["spells"].append(_spell(r, c[0]))
        else:
            new["benefits"].append((c[0], _day(r).replace(day=1), r.choice(["TMTU", "TOTU"]), 20, 10, 7))
        new["clients"][i] = tuple(c)
    if r.random() < 0.2:
        del new["clients"][r.randrange(len(new["clients"]))]
    for rows_ in (new["clients"], new["spells"], new["benefits"]):
        r.shuffle(rows_)   # order is never an input
    return new


@pytest.mark.parametrize("seed", range(40))
def test_maintained_units_equal_units_made_from_scratch(seed):
    r = random.Random(seed)
    states = [_state(r, r.randrange(5, 20))]
    for _ in range(r.randrange(1, 4)):
        states.append(_change(r, states[-1]))
    assert _units_after(states) == _units_after(states[-1:])


def test_spells_with_the_same_start_give_the_same_units_in_any_order():
    """TE's natural key makes starts unique per person; were they not, status and end order the tie."""
    clients = [("t", 1980, "F", "x", False, True, D(2021, 3, 10), None), ("c", 1981, "F", "x", False, False, None, None)]
    spells = [("t", "01", D(2020, 1, 1), D(2021, 6, 30), "x"), ("c", "01", D(2020, 1, 1), None, "x"),
              ("c", "11", D(2020, 1, 1), None, "x")]
    one = {"clients": clients, "spells": spells, "benefits": [], "as_of": D(2023, 1, 31)}
    other = dict(one, spells=[spells[0], spells[2], spells[1]])
    assert _units_after([one]) == _units_after([other]) == _units_after([one, other]) == _units_after([other, one])


def test_a_new_index_month_reads_the_whole_window_of_an_unchanged_person():
    """A kept control's units at a new index month m0 read its spells from m0 − 12 to m0 + 12: a spell
    that covers only m0 − 12 (jobless) or only m0 + 12 (open market) counts as from scratch."""
    clients = [("t", 1980, "F", "x", False, True, D(2022, 1, 10), None), ("c", 1981, "F", "x", False, False, None, None)]
    spells = [("t", "01", D(2021, 1, 1), D(2021, 12, 31), "x"),
              ("c", "02", D(2021, 1, 1), D(2021, 1, 31), "x"),    # only m0 − 12
              ("c", "01", D(2021, 11, 1), None, "x"),
              ("c", "11", D(2023, 1, 1), D(2023, 1, 31), "x")]    # only m0 + 12
    before = {"clients": clients, "spells": spells, "benefits": [], "as_of": D(2022, 12, 31)}
    after = dict(before, as_of=D(2023, 1, 31))   # m0 = 2022-01 joins: 12 months of follow-up observed
    units = _units_after([before, after])
    assert units == _units_after([after])
    control = [u for u in units if u[0] == "control"]
    assert [(u[6], u[10]) for u in control] == [(3, 1)]  # prior_unemployed_months, employed_open_market_12m
