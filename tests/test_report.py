"""The steering-group PDF: built through Dagster, Finnish, small cells suppressed, counts rounded."""
import re

from pypdf import PdfReader

from reports.disclosure import Disclosure, Rules
from reports.steering import build_report
from tests import handmade
from tests.conftest import build, kb, rows
from tests.landing_writer import Landing

HEADINGS = ["Ohjausryhmän raportti", "Tiivistelmä", "TTK-arviointiprosessi neljännesvuosittain", "Palvelupolut",
            "Työllistyminen", "Toimintakyvyn muutos", "Kustannussäästöt kunnille", "Vaikuttavuus: mitä TTK muutti",
            "Liite: aineiston laatu", "Menetelmät ja määritelmät"]


def pages(path):
    return [p.extract_text() for p in PdfReader(path).pages]


def test_report_from_demo_data(demo_build):
    report = demo_build["summary"].report
    assert report.name == "ohjausryhmaraportti_2022-12-31.pdf"
    text = pages(report)
    assert len(text) == 10
    for heading, page in zip(HEADINGS, text):
        assert heading in page
    con = kb(demo_build["data"])
    info = rows(con, "SELECT * FROM kb.build_info")[0]
    eo12 = rows(con, "SELECT * FROM ind.employment_outcomes WHERE window_months = 12")[0]
    con.close()
    assert "31.12.2022" in text[0] and info["key_fingerprint"][:12] in text[0]
    clients = Rules(5, 5).round(info["programme_clients"])  # rounded to the nearest 5
    assert f"Ohjelman asiakkaat\n{clients:,}\n".replace(",", " ") in text[1]
    shown = Disclosure().share(eo12["employed_open_market"], eo12["clients"], "share")
    assert f"Avoimilla työmarkkinoilla 12 kk\n{shown}\n" in text[1]
    assert re.search(r"\d+,\d %", text[1])  # some shares are large enough to be shown
    assert "1 230 460 €" in text[1] and "1 230 460 €" in text[6]
    assert not re.search(r"\d\.\d", " ".join(text[1:7]).replace("31.12.2022", ""))  # decimal commas only


def test_small_cells_are_never_shown(tmp_path, key_file):
    Landing_root = tmp_path / "landing"
    handmade.write(Landing(Landing_root))
    summary = build(Landing_root, tmp_path / "data", key_file)
    text = pages(summary.report)
    summary_page, ttk_page, employment_page, capacity_page, savings_page = text[1], text[2], text[4], text[5], text[6]
    # 3 programme clients, 3 in the cohort: shown as <5, never as the number
    assert summary_page.count("<5") >= 2 and not re.search(r"\b3\b", summary_page)
    # employment table: every count 1–4 is '<5'; shares from fewer than 5 hidden
    lines = [l for l in employment_page.splitlines() if re.match(r"^(0|6|12) kk ", l)]
    assert len(lines) == 5
    for line in lines:
        cells = line.split()[2:]
        assert all(c in ("0", "<5", "–") for c in cells), line
    # TTK table: started counts 1–2 hidden, medians of fewer than 5 hidden
    for line in ttk_page.splitlines():
        if re.match(r"^20\d\d Q\d ", line):
            assert line.split()[2:] in (["<5", "–", "<5", "–", "–"], ["<5", "–", "0", "–", "–"]), line
    # means and euro sums from 2 persons are not shown
    assert "3,5" not in capacity_page and "1,5" not in capacity_page
    assert "600" not in savings_page and "490" not in savings_page
    assert "Kuvaa ei näytetä" in capacity_page
    # impact: fewer than 5 matched treated, so no estimate, no interval, no attributable saving
    impact_page = text[7]
    assert impact_page.count("ei arviota") == 4 and "Kuvaa ei näytetä" in impact_page
    assert "%-yks." not in impact_page and "TTK:n ansiota: säästö 12 kk\n–\n" in summary_page
    assert "säästö –" in savings_page


def test_impact_page_from_the_impact_sample(impact_build):
    """Estimates, intervals and the attributable saving (−att × matched treated) as published."""
    text = pages(impact_build["summary"].report)
    summary_page, savings_page, impact_page = text[1], text[6], text[7]
    con = kb(impact_build["data"])
    est = {r["outcome"]: r for r in rows(con, "SELECT * FROM ind.impact_estimates")}
    cost = rows(con, "SELECT * FROM ind.cost_savings WHERE benefit = 'TOTAL'")[0]
    con.close()
    c = est["municipal_cost_change_eur"]
    saving = f"{round(-c['att'] * c['treated']):,} €".replace(",", " ")
    assert saving == "16 277 €"
    assert f"TTK:n ansiota: säästö 12 kk\n{saving}\n" in summary_page
    assert f"säästö {saving}" in savings_page
    before_after = f"{round(float(cost['saving_eur'])):,} €".replace(",", " ")
    assert f"Kunnan osuus: vähennys ennen–jälkeen\n{before_after}\nhavaittu muutos, ei ohjelman vaikutus" in summary_page
    o12 = est["employed_open_market_12m"]
    shown = f"+{o12['att'] * 100:.1f}".replace(".", ",") + " %-yks."
    assert shown in summary_page and shown in impact_page
    assert "Avoimessa työssä 12 kk kohdalla" in impact_page and "Verrattuja TTK:n aloittaneita 70" in impact_page
    assert "ilman\nverrokkia jäi <5" in impact_page or "verrokkia jäi <5" in impact_page.replace("\n", " ")


def test_threshold_from_parameters(tmp_path, key_file):
    Landing_root = tmp_path / "landing"
    handmade.write(Landing(Landing_root))
    build(Landing_root, tmp_path / "data", key_file)
    kb_path = tmp_path / "data" / "tyokyky.duckdb"
    text = pages(build_report(kb_path, tmp_path / "r", threshold=2, rounding_base=0).path)[1]
    assert "<2" not in text and re.search(r"\b3\b", text)  # with threshold 2, three persons may be shown
    text = pages(build_report(kb_path, tmp_path / "r", threshold=2).path)[1]
    assert "<2" not in text and not re.search(r"\b3\b", text) and re.search(r"\b5\b", text)  # 3 rounded to 5
