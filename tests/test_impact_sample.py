"""The impact sample (800 persons) built through Dagster reproduces impact/expected.json:
every number of ind.impact_estimates, ind.impact_event_study and ind.impact_balance to 1e-9."""
import datetime as dt

import pytest

from tests.conftest import IMPACT_EXPECTED as E
from tests.conftest import kb_fixture, rows
from tests.privacy import landing_codes, scan


def close(x):
    return pytest.approx(x, rel=1e-9, abs=1e-9)


con = kb_fixture("impact_build")


def test_population(con):
    info = rows(con, "SELECT * FROM kb.build_info")[0]
    assert info["as_of"] == dt.date.fromisoformat(E["as_of"])
    assert rows(con, "SELECT count(*) AS n FROM kb.clients")[0]["n"] == E["kb_clients"]
    assert info["programme_clients"] == E["programme_clients"]
    assert rows(con, "SELECT count(*) AS n FROM kb.clients WHERE programme_client AND first_ttk_start IS NOT NULL"
                )[0]["n"] == E["ttk_cohort"]


def test_impact_estimates(con):
    got = rows(con, "SELECT * FROM ind.impact_estimates")
    e = E["impact_estimates"]
    assert [r["outcome"] for r in got] == ["employed_open_market_6m", "employed_open_market_12m",
                                           "employed_months_12m", "municipal_cost_change_eur"]
    assert set(e["by_outcome"]) == {r["outcome"] for r in got}
    for r in got:
        assert (r["treated"], r["unmatched_treated"], r["controls"]) == (e["treated"], e["unmatched_treated"],
                                                                          e["controls"])
        for column, value in e["by_outcome"][r["outcome"]].items():
            assert r[column] == close(value), (r["outcome"], column)


def test_impact_event_study(con):
    got = rows(con, "SELECT * FROM ind.impact_event_study")
    assert [r["relative_month"] for r in got] == [p["relative_month"] for p in E["impact_event_study"]]
    for r, p in zip(got, E["impact_event_study"]):
        for column in ("treated_share", "control_share", "difference"):
            assert r[column] == close(p[column]), (p["relative_month"], column)
        assert r["treated"] == E["impact_estimates"]["treated"]


def test_impact_balance(con):
    got = {r.pop("covariate"): r for r in rows(con, "SELECT * FROM ind.impact_balance")}
    assert list(got) == ["birth_year", "male", "prior_unemployed_months", "prior_municipal_cost_eur"]
    for covariate, expected in E["impact_balance"].items():
        for column, value in expected.items():
            assert got[covariate][column] == close(value), (covariate, column)


def test_impact_views_are_documented(con):
    undocumented = rows(con, """
        SELECT table_name, column_name FROM duckdb_columns()
        WHERE schema_name = 'ind' AND table_name LIKE 'impact%' AND (comment IS NULL OR comment = '')""")
    assert undocumented == []
    assert rows(con, """SELECT count(*) AS n FROM duckdb_views()
                        WHERE schema_name = 'ind' AND view_name LIKE 'impact%' AND comment IS NOT NULL""")[0]["n"] == 4


def test_no_identity_code_in_outputs(impact_build):
    codes = landing_codes(impact_build["landing"])
    assert codes
    assert scan([impact_build["data"]], codes) == []


def latest_check(data_dir, name):
    from dagster import AssetCheckKey, AssetKey, DagsterInstance

    instance = DagsterInstance.from_config(str(data_dir / ".dagster"))
    record = instance.get_latest_asset_check_evaluation_record(AssetCheckKey(AssetKey("indicators"), name))
    return record.event.dagster_event.event_specific_data


def test_matching_check_passes_on_the_sample(impact_build):
    evaluation = latest_check(impact_build["data"], "impact_matching")
    assert evaluation.passed
    meta = evaluation.metadata
    assert (meta["matched_treated"].value, meta["unmatched_treated"].value) == (69, 1)
    assert "| prior_municipal_cost_eur |" in meta["balance"].value


def test_contract_views_check_counts_every_view(impact_build):
    evaluation = latest_check(impact_build["data"], "contract_views_answer")
    assert evaluation.passed
    assert evaluation.metadata["rows_impact_estimates"].value == 4
    assert evaluation.metadata["rows_impact_event_study"].value == 25


def test_contract_views_check_fails_on_a_missing_view(tmp_path):
    import duckdb

    from pipelines import view_answers
    from pipelines.knowledge_base import REQUIRED_VIEWS

    building = tmp_path / "tyokyky.duckdb.building"
    with duckdb.connect(str(building)) as con:
        con.execute("CREATE SCHEMA kb; CREATE TABLE kb.build_info AS SELECT now()::TIMESTAMP AS built_at")
        con.execute("CREATE SCHEMA ind; CREATE VIEW ind.employment_outcomes AS SELECT 1 AS x")
    with duckdb.connect(str(building), read_only=True) as con:
        answers = view_answers.evaluate(con, building, tmp_path / "tyokyky.duckdb", REQUIRED_VIEWS)
    rows = {v: None if table is None else table.num_rows for v, table in answers.items()}
    assert rows["employment_outcomes"] == 1
    assert [v for v, n in rows.items() if n is None] == [v for v in REQUIRED_VIEWS if v != "employment_outcomes"]
