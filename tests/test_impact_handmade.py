"""The impact views (knowledge-base spec v2) on tiny hand-made landing zones, worked out by hand.

as_of = 2022-12-31. Status in a month = status on its 15th. Everyone born 1980–1984 is in birth
group 396, 1990–1991 in 398, 1960 in 392; odd individual numbers are men.

T1  M 1980, TTK 10.3.2021 (m0 2021-03), 01 from 2020 to 30.6.2021, then 11: treated, cell s1.
U1  F 1960, TTK 5.3.2021, 01 from 2020: treated, but no woman of group 392 is a control: unmatched.
T2  F 1990, TTK 10.6.2021 (m0 2021-06), 01 from 1.6.2020 to 31.10.2021, then 11: treated, cell s3;
    before starting, a control in 2021-03 (not yet treated).
L1  M 1983, TTK 10.9.2021 (m0 2021-09), 01 to 31.12.2021, then 11: a control in s1 (2021-03)
    before being treated in s2 (2021-09).
C1  M 1981, 01 throughout: a control in s1 and s2.
C2  M 1982, 01 to 31.8.2021, then 11: a control in s1 and s2.
K1  M 1984, 01 throughout, coaching from 20.3.2021 — in the index month: not eligible in 2021-03.
K2  M 1984, 01 throughout, coaching from 1.4.2021 — the month after: eligible in 2021-03 (s1).
D1  F 1991, 01 from 1.6.2020: the one control of s3 (2021-06): variance term 0.
F1  M 1980, TTK 1.2.2022: 12 months not yet observed: not treated; not unemployed before either.
X1  temporary code, M 1980, TTK 10.3.2021, 01 throughout: would be treated in s1 — never appears.
X2  temporary code, M 1981, 01 throughout: would be a control in s1 — never appears.
O1  F 1975, 01 throughout, with a nested 11 spell 16.5.–14.7.2021 that covers only the 15th of June:
    the later start wins in June, 01 resumes after it; a control in cells without treated.

Cells with matched treated: s1 = (2021-03, M, 396, band 4): T1 against C1, C2, L1, K2;
s3 = (2021-06, F, 398, 4): T2 against D1; s2 = (2021-09, M, 396, 4): L1 against C1, C2.
"""
import datetime as dt
import math
import statistics as st

import pytest

from pseudonymize import load_key_file
from tests.conftest import build, kb, rows
from tests.landing_writer import Landing, fi, hetu

D = dt.date
T1, U1, T2, L1 = hetu(1, 1, 1980, 101), hetu(2, 2, 1960, 202), hetu(3, 3, 1990, 302), hetu(4, 4, 1983, 401)
C1, C2, K1, K2 = hetu(5, 5, 1981, 501), hetu(6, 6, 1982, 601), hetu(7, 7, 1984, 701), hetu(8, 8, 1984, 801)
D1, F1 = hetu(9, 9, 1991, 102), hetu(10, 10, 1980, 111)
X1, X2 = hetu(11, 11, 1980, 951), hetu(12, 12, 1981, 953)
O1 = hetu(13, 1, 1975, 112)
OUTCOMES = ["employed_open_market_6m", "employed_open_market_12m", "employed_months_12m", "municipal_cost_change_eur"]


def ttk_row(code, start):
    return [code, "186", "TE", fi(start - dt.timedelta(days=20)), fi(start), "", "", "LAAKARI"]


def te(code, status, start, end=None):
    return [code, "186", status, start.isoformat(), end.isoformat() if end else "", "Järvenpää"]


def coaching(code, start):
    return [code, dt.datetime.combine(start, dt.time()), None, None, None, None, None]


def consent(codes):
    return [[c, "1.1.2021", ""] for c in codes]


def write_main(landing: Landing) -> None:
    landing.csv("ttk", "2022-12", [ttk_row(T1, D(2021, 3, 10)), ttk_row(U1, D(2021, 3, 5)),
                                   ttk_row(T2, D(2021, 6, 10)), ttk_row(L1, D(2021, 9, 10)),
                                   ttk_row(F1, D(2022, 2, 1)), ttk_row(X1, D(2021, 3, 10))])
    landing.valmennus("2022-12", [coaching(K1, D(2021, 3, 20)), coaching(K2, D(2021, 4, 1))])
    landing.csv("suostumukset", "2022-12", consent([T1, U1, T2, L1, F1, X1, K1, K2]))
    start = D(2020, 1, 1)
    landing.csv("te", "2022-12", [
        te(T1, "01", start, D(2021, 6, 30)), te(T1, "11", D(2021, 7, 1)),
        te(U1, "01", start),
        te(T2, "01", D(2020, 6, 1), D(2021, 10, 31)), te(T2, "11", D(2021, 11, 1)),
        te(L1, "01", start, D(2021, 12, 31)), te(L1, "11", D(2022, 1, 1)),
        te(C1, "01", start),
        te(C2, "01", start, D(2021, 8, 31)), te(C2, "11", D(2021, 9, 1)),
        te(K1, "01", start), te(K2, "01", start),
        te(D1, "01", D(2020, 6, 1)),
        te(F1, "01", D(2021, 12, 1)),
        te(X1, "01", start), te(X2, "01", start),
        te(O1, "01", start), te(O1, "11", D(2021, 5, 16), D(2021, 7, 14)),
    ])
    landing.kela("2022-12", [
        (T1, "202006", "TMTU", 20, 20000, 10000),   # before m0 2021-03: 100 €
        (T1, "202105", "TMTU", 20, 8000, 4000),     # after: 40 €
        (T1, "202103", "TMTU", 20, 99900, 99900),   # the index month itself counts in neither
        (T1, "202105", "PPR", 20, 50000, 0),        # another benefit: ignored
        (T2, "202101", "TOTU", 0, 5000, 5000),      # before m0 2021-06: 50 €
        (T2, "202108", "TOTU", 0, 1000, 1000),      # after: 10 €
        (C1, "202006", "TMTU", 20, 40000, 20000),   # 200 €
        (C1, "202105", "TMTU", 20, 40000, 20000),   # 200 €
    ])


@pytest.fixture(scope="module")
def built(tmp_path_factory, session_key_file):
    root = tmp_path_factory.mktemp("impact_handmade")
    write_main(Landing(root / "landing"))
    build(root / "landing", root / "data", session_key_file)
    con = kb(root / "data")
    yield con, load_key_file(session_key_file), root / "data"
    con.close()


@pytest.fixture(scope="module")
def con(built):
    return built[0]


def pseudonym(key, code):
    return key.pseudonym(code)


def test_units_roles_and_cells(built):
    con, key, _ = built
    who = {pseudonym(key, c): name for name, c in dict(T1=T1, U1=U1, T2=T2, L1=L1, C1=C1, C2=C2, K1=K1, K2=K2,
                                                       D1=D1, F1=F1, X1=X1, X2=X2, O1=O1).items()}
    units = {(r["role"], who[r["pseudonym"]], r["index_month"].isoformat()[:7]):
             (r["sex"], r["birth_year_group"], r["prior_unemployed_months"], r["prior_band"])
             for r in rows(con, "SELECT * FROM ind.impact_units")}
    assert {k for k in units if k[0] == "treated"} == {
        ("treated", "T1", "2021-03"), ("treated", "U1", "2021-03"), ("treated", "T2", "2021-06"),
        ("treated", "L1", "2021-09")}   # not F1 (short follow-up), not X1 (temporary)
    controls = {(name, month) for role, name, month in units if role == "control"}
    assert controls == {
        ("C1", "2021-03"), ("C2", "2021-03"), ("L1", "2021-03"), ("K2", "2021-03"), ("D1", "2021-03"), ("T2", "2021-03"),
        ("C1", "2021-06"), ("C2", "2021-06"), ("L1", "2021-06"), ("D1", "2021-06"),
        ("C1", "2021-09"), ("C2", "2021-09"), ("D1", "2021-09"),
        ("O1", "2021-03"), ("O1", "2021-06"), ("O1", "2021-09"),
    }   # K1 started coaching in 2021-03; K2 not eligible after its coaching began; X2 temporary
    assert units[("treated", "T1", "2021-03")] == ("M", 396, 12, 4)
    assert units[("control", "D1", "2021-03")] == ("F", 398, 9, 3)   # 01 from June 2020: 9 of 12 months
    assert units[("control", "O1", "2021-09")] == ("F", 395, 11, 4)   # June 2021 was 11


def test_status_on_the_15th_and_the_latest_start(built):
    """O1's nested 11 spell (16.5.–14.7.2021) decides June only; 01 holds May and July."""
    con, key, _ = built
    got = {r["index_month"].isoformat()[:7]: r for r in rows(
        con, f"SELECT * FROM ind.impact_units WHERE pseudonym = '{pseudonym(key, O1)}'")}
    assert sorted(got) == ["2021-03", "2021-06", "2021-09"]   # unemployed on 15.5.2021: eligible in 2021-06
    assert [got[m]["open_market_months"] for m in sorted(got)] == [1 << (3 + 12), 1 << (0 + 12), 1 << (-3 + 12)]
    assert [got[m]["employed_months_12m"] for m in sorted(got)] == [1, 0, 0]
    assert [got[m]["prior_unemployed_months"] for m in sorted(got)] == [12, 12, 11]


def test_no_temporary_code_in_any_impact_view(built):
    con, key, _ = built
    hidden = {pseudonym(key, X1), pseudonym(key, X2)}
    assert rows(con, "SELECT count(*) AS n FROM kb.clients WHERE temporary_id")[0]["n"] == 2
    for view in ("impact_units", "impact_outcomes"):
        assert not hidden & {r["pseudonym"] for r in rows(con, f"SELECT pseudonym FROM ind.{view}")}


# Per matched treated: (Y, cell's control mean C, controls c, control variance v) for each outcome,
# worked out from the spells and payments above.
HAND = {
    # T1 in s1: controls C1 (0, 0, 0, 0 €), C2 (1, 1, 7, 0), L1 (0, 1, 3, 0), K2 (0, 0, 0, 0)
    "T1": {"employed_open_market_6m": (1, 0.25, 4, 0.25), "employed_open_market_12m": (1, 0.5, 4, 1 / 3),
           "employed_months_12m": (9, 2.5, 4, 11.0), "municipal_cost_change_eur": (-60, 0, 4, 0)},
    # T2 in s3: the one control D1 (0, 0, 0, 0 €)
    "T2": {"employed_open_market_6m": (1, 0, 1, 0), "employed_open_market_12m": (1, 0, 1, 0),
           "employed_months_12m": (8, 0, 1, 0), "municipal_cost_change_eur": (-40, 0, 1, 0)},
    # L1 in s2: controls C1 (0, 0, 0, −200 €) and C2 (1, 1, 12, 0)
    "L1": {"employed_open_market_6m": (1, 0.5, 2, 0.5), "employed_open_market_12m": (1, 0.5, 2, 0.5),
           "employed_months_12m": (9, 6, 2, 72.0), "municipal_cost_change_eur": (0, -100, 2, 20000.0)},
}


def spec_estimate(outcome):
    """att and se exactly as the spec writes them, from the hand-made per-person values."""
    cells = [HAND[p][outcome] for p in ("T1", "T2", "L1")]
    d = [y - c for y, c, _, _ in cells]
    n = len(d)
    att = sum(d) / n
    se = math.sqrt(sum((x - att) ** 2 for x in d) / (n * (n - 1)) + sum((1 / n) ** 2 * v / c for _, _, c, v in cells))
    return att, se, st.mean(y for y, *_ in cells), st.mean(c for _, c, *_ in cells)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_estimates_by_hand(con, outcome):
    r = rows(con, f"SELECT * FROM ind.impact_estimates WHERE outcome = '{outcome}'")[0]
    att, se, treated_mean, control_mean = spec_estimate(outcome)
    assert (r["treated"], r["unmatched_treated"], r["controls"]) == (3, 1, 5)   # controls: C1 C2 L1 K2 D1
    assert r["treated_mean"] == pytest.approx(treated_mean)
    assert r["control_mean"] == pytest.approx(control_mean)
    assert r["att"] == pytest.approx(att)
    assert r["se"] == pytest.approx(se)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(att - 1.96 * se), pytest.approx(att + 1.96 * se))


def test_one_control_cell_has_no_variance_term(con):
    got = rows(con, """SELECT outcome, controls, control_variance FROM ind.impact_outcomes
                       WHERE index_month = DATE '2021-06-01' ORDER BY outcome""")
    assert [(r["controls"], r["control_variance"]) for r in got] == [(1, 0.0)] * 4


def test_event_study_by_hand(con):
    got = {r["relative_month"]: r for r in rows(con, "SELECT * FROM ind.impact_event_study")}
    assert sorted(got) == list(range(-12, 13))
    assert {r["treated"] for r in got.values()} == {3}
    assert (got[-1]["treated_share"], got[-1]["control_share"]) == (0, 0)   # all unemployed the month before
    assert got[0]["treated_share"] == 0
    assert got[6]["treated_share"] == 1 and got[6]["control_share"] == pytest.approx((0.25 + 0 + 0.5) / 3)
    assert got[12]["control_share"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    # k = 9: T1 (2021-12) 11, T2 (2022-03) 11, L1 (2022-06) 11; s1 controls at 2021-12: C2 and L1? L1 is 01
    # until 31.12.2021: only C2 → 1/4; s3: D1 0; s2 at 2022-06: C2 → 1/2
    assert got[9]["treated_share"] == 1
    assert got[9]["control_share"] == pytest.approx((0.25 + 0 + 0.5) / 3)
    assert got[9]["difference"] == pytest.approx(1 - (0.25 + 0.5) / 3)


def smd(treated, pool, matched_mean):
    denominator = math.sqrt((st.variance(treated) + st.variance(pool)) / 2)
    return (st.mean(treated) - st.mean(pool)) / denominator, (st.mean(treated) - matched_mean) / denominator


def test_balance_by_hand(con):
    got = {r["covariate"]: r for r in rows(con, "SELECT * FROM ind.impact_balance")}
    # the pool: every eligible (control, index month) pair of 2021-03, 2021-06 and 2021-09
    by_year = {"C1": 1981, "C2": 1982, "L1": 1983, "K2": 1984, "D1": 1991, "T2": 1990, "O1": 1975}
    pool_names = ["C1", "C2", "L1", "K2", "D1", "T2", "O1", "C1", "C2", "L1", "D1", "O1", "C1", "C2", "D1", "O1"]
    treated_years = [1980, 1990, 1983]
    matched = st.mean([st.mean([1981, 1982, 1983, 1984]), 1991, st.mean([1981, 1982])])
    b = got["birth_year"]
    assert b["treated_mean"] == pytest.approx(st.mean(treated_years))
    assert b["pool_mean"] == pytest.approx(st.mean(by_year[n] for n in pool_names))
    assert b["matched_mean"] == pytest.approx(matched)
    before, after = smd(treated_years, [by_year[n] for n in pool_names], matched)
    assert (b["smd_before"], b["smd_after"]) == (pytest.approx(before), pytest.approx(after))
    male = got["male"]   # sex is a cell variable: matching balances it exactly
    assert male["treated_mean"] == pytest.approx(2 / 3) and male["smd_after"] == 0
    # prior cost: T1 100 €, T2 50 €, L1 0; C1 200 € at 2021-03 and 2021-09, 400 € at 2021-06; T2 50 € at 2021-03
    cost = got["prior_municipal_cost_eur"]
    pool_cost = [200, 0, 0, 0, 0, 50, 0, 400, 0, 0, 0, 0, 200, 0, 0, 0]
    before, after = smd([100, 50, 0], pool_cost, st.mean([200 / 4, 0, 200 / 2]))
    assert cost["pool_mean"] == pytest.approx(st.mean(pool_cost))
    assert (cost["smd_before"], cost["smd_after"]) == (pytest.approx(before), pytest.approx(after))
    prior = got["prior_unemployed_months"]   # D1, T2 had 9 months in 2021-03, O1 11 in 2021-09, the rest 12
    assert prior["treated_mean"] == 12 and prior["matched_mean"] == 12 and prior["smd_after"] == 0
    assert prior["pool_mean"] == pytest.approx((13 * 12 + 2 * 9 + 11) / 16)


def test_one_matched_treated_gives_null_estimates(tmp_path, session_key_file):
    landing = Landing(tmp_path / "landing")
    landing.csv("ttk", "2022-12", [ttk_row(T1, D(2021, 3, 10))])
    landing.csv("suostumukset", "2022-12", consent([T1]))
    landing.csv("te", "2022-12", [te(T1, "01", D(2020, 1, 1), D(2021, 6, 30)), te(T1, "11", D(2021, 7, 1)),
                                  te(C1, "01", D(2020, 1, 1))])
    build(tmp_path / "landing", tmp_path / "data", session_key_file)
    with kb(tmp_path / "data") as con:
        got = rows(con, "SELECT * FROM ind.impact_estimates")
        assert [r["outcome"] for r in got] == OUTCOMES
        for r in got:
            assert (r["treated"], r["unmatched_treated"], r["controls"]) == (1, 0, 1)
            assert (r["att"], r["se"], r["ci_low"], r["ci_high"]) == (None, None, None, None)
        assert got[0]["treated_mean"] == 1 and got[0]["control_mean"] == 0
        assert {r["treated"] for r in rows(con, "SELECT * FROM ind.impact_event_study")} == {1}


def test_matching_check_warns_on_weak_matching(built):
    from pipelines.impact import matching_quality
    from tests.test_impact_sample import latest_check

    evaluation = latest_check(built[2], "impact_matching")   # as Dagster recorded it
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert "1 of 4 treated have no eligible control (25%)" in evaluation.description
    assert evaluation.metadata["unmatched_treated"].value == 1
    quality = matching_quality(built[0])
    # U1 is one of four treated without a control (25 % > 10 %); birth years differ inside the group
    assert not quality.passed
    assert quality.unmatched_share == 0.25
    assert any(p.startswith("1 of 4 treated have no eligible control") for p in quality.problems)
    assert any(p.startswith("birth_year not balanced") for p in quality.problems)
    assert not any(p.startswith("male") for p in quality.problems)
