"""The shared sample deliveries built through Dagster reproduce expected.json."""
import datetime as dt

import pytest

from pipelines import quality
from tests.conftest import SAMPLE_EXPECTED as E
from tests.conftest import kb_fixture, rows
from tests.privacy import landing_codes, scan

con = kb_fixture("sample_build")


def test_build_summary(sample_build):
    s = sample_build["summary"]
    assert not s.rejected
    assert s.report and s.report.name == "ohjausryhmaraportti_2022-12-31.pdf"


def test_rows_and_invalid_codes_per_partner(con):
    dq = rows(con, "SELECT partner, sum(rows_read) AS r, count(*) AS n FROM ind.data_quality "
                   "WHERE partner <> 'suostumukset' OR period = '2022-12' GROUP BY partner")
    assert {r["partner"]: r["r"] for r in dq} == E["rows_per_partner_including_invalid"]
    invalid = rows(con, "SELECT partner, count(*) AS n FROM kb.quarantine WHERE reason LIKE '%: %' "
                        "AND split_part(reason, ':', 1) IN ('henkilotunnus', 'HETU', 'hetu', 'Henkilötunnus') "
                        "GROUP BY partner")
    expected = {p: n for p, n in E["invalid_identity_code_rows"].items() if n}
    assert {r["partner"]: r["n"] for r in invalid} == expected
    assert rows(con, "SELECT count(*) AS n FROM ind.data_quality WHERE rows_read <> rows_loaded + rows_quarantined")[0]["n"] == 0


def test_population_and_consent(con):
    info = rows(con, "SELECT * FROM kb.build_info")[0]
    assert info["as_of"] == dt.date.fromisoformat(E["as_of"])
    assert rows(con, "SELECT count(*) AS n FROM kb.clients")[0]["n"] == E["kb_clients"]
    assert info["programme_clients"] == E["programme_clients"]
    cohort = rows(con, "SELECT count(*) AS n FROM kb.clients WHERE programme_client AND first_ttk_start IS NOT NULL")
    assert cohort[0]["n"] == E["ttk_cohort"]
    assert (info["withdrawn_erased"], info["awaiting_consent"]) == (E["withdrawn"], E["awaiting_consent"])


def test_employment_outcomes(con):
    got = rows(con, "SELECT * EXCLUDE (share_employed_open_market) FROM ind.employment_outcomes")
    assert got == E["employment_outcomes"]
    shares = [r["share_employed_open_market"] for r in rows(con, "SELECT * FROM ind.employment_outcomes")]
    assert shares == pytest.approx([r["employed_open_market"] / r["clients"] for r in E["employment_outcomes"]])


def test_coaching_placements(con):
    got = rows(con, "SELECT window_months, clients, placed, median_days_to_placement FROM ind.coaching_placements")
    assert got == E["coaching_placements"]


def test_ttk_process(con):
    got = {r.pop("quarter"): r for r in rows(con, "SELECT * FROM ind.ttk_process")}
    assert got.keys() == E["ttk_process"].keys()
    for quarter, expected in E["ttk_process"].items():
        for k, v in expected.items():
            assert got[quarter][k] == (pytest.approx(v) if v is not None else None), (quarter, k)


def test_pathway_transitions(con):
    got = {f"{r['from_service']}>{r['to_service']}": {"transitions": r["transitions"], "clients": r["clients"]}
           for r in rows(con, "SELECT * FROM ind.pathway_transitions")}
    assert got == E["pathway_transitions"]


def test_measure_change(con):
    got = {r["instrument"]: r for r in rows(con, "SELECT * FROM ind.measure_change")}
    assert got.keys() == E["measure_change"].keys()
    for instrument, expected in E["measure_change"].items():
        assert got[instrument]["clients"] == expected["clients"]
        assert got[instrument]["mean_baseline"] == pytest.approx(expected["mean_baseline"])
        assert got[instrument]["mean_end"] == pytest.approx(expected["mean_end"])
        assert got[instrument]["mean_change"] == pytest.approx(expected["mean_end"] - expected["mean_baseline"])


def test_cost_savings_and_scenario(con):
    got = {r["benefit"]: r for r in rows(con, "SELECT * FROM ind.cost_savings")}
    cs = E["cost_savings"]
    for b in ("TMTU", "TOTU"):
        assert got[b]["clients"] == cs["clients"]
        assert float(got[b]["before_eur"]) == pytest.approx(cs[b]["before_eur"])
        assert float(got[b]["after_eur"]) == pytest.approx(cs[b]["after_eur"])
        assert float(got[b]["saving_eur"]) == pytest.approx(cs[b]["before_eur"] - cs[b]["after_eur"])
    assert float(got["TOTAL"]["before_eur"]) == pytest.approx(cs["TMTU"]["before_eur"] + cs["TOTU"]["before_eur"])
    scenario = rows(con, "SELECT * FROM ind.savings_scenario")[0]
    assert float(scenario["annual_saving_eur"]) == E["savings_scenario_default_eur"]


def test_no_identity_code_in_any_output(sample_build):
    codes = landing_codes(sample_build["landing"])
    assert len(codes) > 100  # the scan knows what to look for
    data = sample_build["data"]
    outputs = [p for p in data.iterdir() if p.name != "landing"]
    assert {p.name for p in outputs} >= {"staging", "tyokyky.duckdb", "reports", ".dagster"}
    assert scan(outputs, codes) == []


def test_the_scan_would_find_a_leak(tmp_path, sample_build):
    """The privacy scan is not vacuous: a code written into Parquet is found."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    code = sorted(landing_codes(sample_build["landing"]))[0]
    pq.write_table(pa.table({"x": [code]}), tmp_path / "leak.parquet", compression="zstd")
    assert scan([tmp_path], {code})


def test_the_contract_check_reads_a_repeatable_sample_of_the_staged_rows(sample_build):
    """GX checks a sample of at most SAMPLE_ROWS rows: the same rows each time, from more than one
    period, with the staged columns only; below the sample size, every row."""
    staging = sample_build["data"] / "staging"
    periods = sorted(p.name for p in (staging / "kela").iterdir() if (p / "rows.parquet").exists())
    whole, total = quality.load_staged(staging, "kela", periods, sample_rows=10**9)
    assert len(whole) == total > 60
    sample, counted = quality.load_staged(staging, "kela", periods, sample_rows=30)
    again, _ = quality.load_staged(staging, "kela", periods, sample_rows=30)
    assert counted == total and len(sample) == 30
    assert list(sample.columns) == list(whole.columns)
    assert sample.equals(again)
    keys = ["delivery_period", "source_line"]
    assert set(map(tuple, sample[keys].values)) <= set(map(tuple, whole[keys].values))
    assert sample["delivery_period"].nunique() > 1 or whole["delivery_period"].nunique() == 1
