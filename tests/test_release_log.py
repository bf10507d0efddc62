"""The release log: one record per published PDF, exact counts only in the restricted sidecar,
and the differencing flag when a cell moves between shown and suppressed by a few persons."""
import json
import stat

from pypdf import PdfReader

from reports import release_log
from reports.disclosure import Disclosure, Rules
from tests import handmade
from tests.conftest import build
from tests.landing_writer import Landing, hetu
from tests.privacy import landing_codes, scan


def records(data):
    return [json.loads(p.read_text()) for p in sorted((data / "releases").glob("*.json"))]


def with_extra_clients(root, extra: int) -> None:
    """The hand-made landing zone with ``extra`` more consenting TTK clients (3 + extra in the cohort)."""
    landing = Landing(root)
    handmade.write(landing)
    codes = [hetu(11, 3, 1982, 700 + i) for i in range(extra)]
    landing.csv("ttk", "2022-11", [handmade.ttk(c, handmade.D(2022, 10, 1), handmade.D(2022, 11, 1)) for c in codes])
    landing.csv("suostumukset", "2022-12", [[handmade.P1, "1.1.2021", ""], [handmade.P2, "1.3.2021", ""],
                                            [handmade.P3, "1.9.2022", ""], [handmade.P5, "1.3.2021", "1.11.2022"],
                                            *([c, "1.10.2022", ""] for c in codes)])


def test_one_person_more_in_a_small_cell_is_flagged(tmp_path, key_file):
    landing, data = tmp_path / "landing", tmp_path / "data"
    with_extra_clients(landing, 1)                     # cohort of 4: shown as <5
    first = build(landing, data, key_file)
    [r1] = records(data)
    assert r1["cells"]["ttk_cohort/clients"] == {"status": "suppressed", "released": "<5"}
    assert r1["previous_release"] is None and r1["differencing_flags"] == []
    assert "Erotteluriski: tämä on ensimmäinen julkaisu;" in PdfReader(first.report).pages[8].extract_text()

    with_extra_clients(landing, 2)                     # one person more: 5, shown
    second = build(landing, data, key_file)
    r1, r2 = records(data)
    assert r2["cells"]["ttk_cohort/clients"] == {"status": "exact", "released": "5"}
    flagged = {f["cell"]: f for f in r2["differencing_flags"]}
    assert flagged["ttk_cohort/clients"] == {"cell": "ttk_cohort/clients", "previous": "suppressed", "now": "exact"}
    assert "build_info/programme_clients" in flagged
    assert r2["previous_release"] and r2["previous_release"] != r1["previous_release"]
    appendix = PdfReader(second.report).pages[8].extract_text().replace("\n", " ")
    assert f"Erotteluriski: {len(flagged)} lukua siirtyi" in appendix
    assert r2["differencing_flags"][0]["cell"] in appendix.replace(" ", "")

    build(landing, data, key_file)                     # the same data again: nothing moves
    assert records(data)[-1]["differencing_flags"] == []

    # no identity code anywhere in the releases, exact counts only in the 0600 sidecar
    assert scan([data / "releases"], landing_codes(landing)) == []
    sidecar = data / "releases" / "restricted" / "ohjausryhmaraportti.json"
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    assert stat.S_IMODE(sidecar.parent.stat().st_mode) == 0o700
    assert json.loads(sidecar.read_text())["cells"]["ttk_cohort/clients"]["persons"] == 5


def test_a_record_per_published_pdf(tmp_path, key_file):
    landing, data = tmp_path / "landing", tmp_path / "data"
    handmade.write(Landing(landing))
    summary = build(landing, data, key_file)
    [record] = records(data)
    import hashlib
    assert record["file"] == "reports/ohjausryhmaraportti_2022-12-31.pdf"
    assert record["sha256"] == hashlib.sha256(summary.report.read_bytes()).hexdigest()
    assert record["output"] == "ohjausryhmaraportti" and record["released_at"]
    assert record["knowledge_base"]["as_of"] == "2022-12-31" and len(record["knowledge_base"]["key_fingerprint"]) > 8
    assert record["knowledge_base"]["built_at"]
    assert record["parameters"]["suppression_threshold"] == 5 and record["parameters"]["rounding_base"] == 5
    assert record["rules"] == {"threshold": 5, "rounding_base": 5, "midpoint_rounding": False}
    cells = record["cells"]
    assert cells["build_info/programme_clients"] == {"status": "suppressed", "released": "<5"}
    assert cells["employment_outcomes/window=0/clients"]["status"] == "suppressed"
    assert cells["impact_estimates/employed_open_market_12m"] == {"status": "suppressed", "released": "–"}
    assert sum(record["cells_by_status"].values()) == len(cells) > 40
    # counts appear only as released: never the exact 3 programme clients
    assert all("persons" not in c for c in cells.values())
    assert not any(c["released"] == "3" for c in cells.values())


def test_differencing_needs_a_change_below_the_threshold():
    def release(n):
        d = Disclosure(Rules(5, 5))
        d.count(n, "c")
        return d.cells

    def previous(n):
        return {"release": "r", "cells": {"c": {"status": release(n)["c"].status, "persons": n}}}

    assert [f.cell for f in release_log.differencing(previous(4), release(5), 5)] == ["c"]
    assert [f.cell for f in release_log.differencing(previous(8), release(4), 5)] == ["c"]   # 8 → 4: flagged
    assert release_log.differencing(previous(9), release(4), 5) == []    # a change of 5: not a handful
    assert release_log.differencing(previous(6), release(7), 5) == []    # shown both times
    assert len(release_log.differencing(previous(0), release(3), 5)) == 1    # 0 is shown, <5 is not
    assert release_log.differencing(previous(2), release(3), 5) == []    # hidden both times
    assert release_log.differencing(None, release(3), 5) == []


def test_midpoint_rounding_from_the_parameters_file(tmp_path, key_file):
    landing, data = tmp_path / "landing", tmp_path / "data"
    handmade.write(Landing(landing))
    params = tmp_path / "parameters.yaml"
    params.write_text("suppression: {threshold: 8, rounding_base: 6, midpoint_rounding: 1}\n")
    summary = build(landing, data, key_file, parameters_file=params)
    [record] = records(data)
    assert record["rules"] == {"threshold": 8, "rounding_base": 6, "midpoint_rounding": True}
    assert record["cells"]["build_info/programme_clients"] == {"status": "suppressed", "released": "<8"}
    methods = " ".join(PdfReader(summary.report).pages[9].extract_text().split())
    assert "1–6 → 3, 7–12 → 9" in methods
