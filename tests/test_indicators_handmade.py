"""Every view of the knowledge base on a hand-made landing zone, worked out by hand
(see tests/handmade.py for the people and why each number is what it is)."""
import datetime as dt

import pytest

from tests import handmade
from tests.conftest import build, kb, rows
from tests.landing_writer import Landing

D = dt.date


@pytest.fixture(scope="module")
def built(tmp_path_factory, session_key_file):
    root = tmp_path_factory.mktemp("handmade")
    handmade.write(Landing(root / "landing"))
    summary = build(root / "landing", root / "data", session_key_file)
    con = kb(root / "data")
    yield {"con": con, "summary": summary, "root": root}
    con.close()


@pytest.fixture(scope="module")
def con(built):
    return built["con"]


def test_clients_consent_and_latest_municipality(con):
    info = rows(con, "SELECT * FROM kb.build_info")[0]
    assert info["as_of"] == D(2022, 12, 31)
    assert (info["programme_clients"], info["awaiting_consent"], info["withdrawn_erased"]) == (3, 1, 1)
    clients = rows(con, "SELECT * FROM kb.clients ORDER BY birth_year")
    assert [(c["birth_year"], c["sex"], c["programme_client"], c["municipality"]) for c in clients] == [
        (1970, "F", False, "858"),   # P6, 606 even; comparison population
        (1975, "F", True, "186"),    # P2
        (1980, "M", True, "091"),    # P1: TTK 2022-09 (kuntakoodi 91 → 091) is later than TE 092 from 2021-06
        (2001, "M", True, "505"),    # P3
    ]
    p1 = [c for c in clients if c["birth_year"] == 1980][0]
    assert (p1["first_ttk_start"], p1["first_coaching_start"]) == (D(2021, 2, 1), D(2021, 6, 1))


def test_latest_record_version_wins(con):
    ttk = rows(con, "SELECT start_date, end_date, end_reason FROM kb.episodes WHERE service = 'TTK' ORDER BY start_date")
    assert ttk == [
        {"start_date": D(2021, 2, 1), "end_date": D(2021, 5, 31), "end_reason": "TYO"},
        {"start_date": D(2021, 3, 15), "end_date": None, "end_reason": None},
        {"start_date": D(2022, 9, 1), "end_date": D(2022, 9, 30), "end_reason": "MUU"},
        {"start_date": D(2022, 10, 1), "end_date": None, "end_reason": None},
    ]
    spells = rows(con, "SELECT count(*) AS n FROM kb.status_spells")[0]["n"]
    assert spells == 5  # P1 ×2, P2 ×2, P6; P4 held back, P5 erased


def test_employment_outcomes(con):
    assert rows(con, "SELECT * FROM ind.employment_outcomes") == [
        {"window_months": 0, "clients": 3, "employed_open_market": 0, "subsidised": 0, "unemployed": 2,
         "in_services": 0, "other": 1, "share_employed_open_market": 0.0},
        {"window_months": 6, "clients": 2, "employed_open_market": 1, "subsidised": 0, "unemployed": 0,
         "in_services": 1, "other": 0, "share_employed_open_market": 0.5},   # P2 overlap: 12 decides
        {"window_months": 12, "clients": 2, "employed_open_market": 1, "subsidised": 0, "unemployed": 1,
         "in_services": 0, "other": 0, "share_employed_open_market": 0.5},
    ]


def test_coaching_placements(con):
    assert rows(con, "SELECT * FROM ind.coaching_placements") == [
        {"window_months": 6, "clients": 2, "placed": 1, "share_placed": 0.5, "median_days_to_placement": 30.0},
        {"window_months": 12, "clients": 1, "placed": 1, "share_placed": 1.0, "median_days_to_placement": 30.0},
    ]


def test_ttk_process(con):
    assert rows(con, "SELECT * FROM ind.ttk_process") == [
        {"quarter": "2021Q1", "started": 2, "median_wait_days": 22.5, "ended": 1, "median_duration_days": 119.0,
         "share_within_6_months": 1.0},
        {"quarter": "2022Q3", "started": 1, "median_wait_days": 31.0, "ended": 1, "median_duration_days": 29.0,
         "share_within_6_months": 1.0},
        {"quarter": "2022Q4", "started": 1, "median_wait_days": 30.0, "ended": 0, "median_duration_days": None,
         "share_within_6_months": None},
    ]


def test_pathway_transitions_and_variants(con):
    got = {(r["from_service"], r["to_service"]): (r["transitions"], r["clients"])
           for r in rows(con, "SELECT * FROM ind.pathway_transitions")}
    assert got == {("TTK", "TYOKOKEILU"): (1, 1), ("TYOKOKEILU", "VALMENNUS"): (1, 1), ("VALMENNUS", "TTK"): (2, 2),
                   ("TYP", "TTK"): (1, 1), ("TTK", "VALMENNUS"): (1, 1)}
    variants = {r["variant"]: (r["steps"], r["clients"]) for r in rows(con, "SELECT * FROM ind.pathway_variants")}
    assert variants == {"TTK > TYOKOKEILU > VALMENNUS > TTK": (4, 1), "TYP > TTK > VALMENNUS": (3, 1),
                        "VALMENNUS > TTK": (2, 1)}


def test_measure_change(con):
    assert rows(con, "SELECT * FROM ind.measure_change") == [
        {"instrument": "TKI", "clients": 2, "mean_baseline": 3.5, "mean_end": 5.0, "mean_change": 1.5}]


def test_cost_savings_with_months_without_benefits(con):
    got = {r["benefit"]: (r["clients"], float(r["before_eur"]), float(r["after_eur"]), float(r["saving_eur"]))
           for r in rows(con, "SELECT * FROM ind.cost_savings")}
    assert got == {"TMTU": (2, 600.0, 120.0, 480.0), "TOTU": (2, 10.0, 0.0, 10.0), "TOTAL": (2, 610.0, 120.0, 490.0)}


def test_savings_scenario_defaults(con):
    assert rows(con, "SELECT long_term_unemployed, employment_rate, annual_saving_eur FROM ind.savings_scenario") == [
        {"long_term_unemployed": 2200, "employment_rate": 0.1, "annual_saving_eur": 1230460}]


def test_time_to_next_service_and_dropouts(con):
    assert rows(con, "SELECT next_service, episodes, median_days FROM ind.time_to_next_service") == [
        {"next_service": "VALMENNUS", "episodes": 1, "median_days": 1.0},
        {"next_service": None, "episodes": 1, "median_days": None}]
    assert rows(con, "SELECT * FROM ind.ttk_dropouts") == [
        {"end_quarter": "2021Q2", "ended_observed": 1, "no_service_within_90_days": 0, "dropouts": 0,
         "share_dropouts": 0.0},
        {"end_quarter": "2022Q3", "ended_observed": 1, "no_service_within_90_days": 1, "dropouts": 1,
         "share_dropouts": 1.0}]


def test_status_by_month(con):
    got = {(r["months_after_index"], r["status"]): r["clients"] for r in rows(con, "SELECT * FROM ind.status_by_month")}
    assert got[(0, "01")] == 2 and got[(0, "none")] == 1
    assert got[(6, "11")] == 1 and got[(6, "12")] == 1
    # P2: 15.3.2021 + 21 months = 15.12.2022 is observed, + 22 months is after as_of; P1 (1.2.2021) + 22 is not
    assert got[(21, "11")] == 1 and got[(21, "01")] == 1
    assert got[(22, "11")] == 1 and (22, "01") not in got
    assert not [k for k in got if k[0] > 22]


def test_data_quality_and_warnings(con):
    dq = rows(con, "SELECT partner, period, rows_read, rows_loaded, rows_quarantined, status FROM ind.data_quality")
    assert len(dq) == 19 and all(r["status"] == "loaded" for r in dq)
    assert all(r["rows_read"] == r["rows_loaded"] + r["rows_quarantined"] for r in dq)
    assert rows(con, "SELECT cases, persons FROM ind.data_quality_warnings") == [{"cases": 1, "persons": 1}]
    assert rows(con, "SELECT * FROM ind.consent_status") == [
        {"programme_clients": 3, "awaiting_consent": 1, "withdrawn_erased": 1, "consent_snapshot_period": "2022-12"}]


def test_every_table_view_and_column_is_documented(con):
    undocumented = rows(con, """
        SELECT table_name, column_name FROM duckdb_columns()
        WHERE schema_name IN ('kb', 'ind') AND (comment IS NULL OR comment = '')""")
    assert undocumented == []
    tables = rows(con, """SELECT table_name FROM duckdb_tables() WHERE schema_name = 'kb' AND comment IS NULL
                          UNION ALL SELECT view_name FROM duckdb_views() WHERE schema_name = 'ind' AND comment IS NULL""")
    assert tables == []
