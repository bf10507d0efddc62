"""Every fault of the spec's "Row errors and rejected deliveries", one test each.

Each asserts the status, the reason a partner could act on, and the counts
(rows_read = rows_loaded + rows_quarantined for every loaded delivery).
"""
import datetime as dt
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import landing as landing_zone
from pipelines import staging
from schemas import load_contracts
from tests.landing_writer import hetu

C = load_contracts()
A, B, D = hetu(1, 2, 1980, 123), hetu(2, 3, 1975, 456), hetu(3, 4, 2001, 78)
TTK = [A, "91", "TE", "1.2.2021", "4.3.2021", "", "", "LAAKARI"]


def stage(tmp_path, landing, partner, period, key):
    d = landing_zone.scan_partner(landing.root, C[partner], period)
    attempt = staging.stage_delivery(tmp_path / "staging", d, C[partner], key)
    folder = tmp_path / "staging" / partner / period
    quarantine = pq.read_table(folder / "quarantine.parquet").to_pylist() if (folder / "quarantine.parquet").exists() else []
    loaded = pq.read_table(folder / "rows.parquet").to_pylist() if (folder / "rows.parquet").exists() else []
    if attempt.status == "loaded":
        assert attempt.rows_read == attempt.rows_loaded + attempt.rows_quarantined
    return attempt, quarantine, loaded


def reasons(quarantine):
    return [(q["line"], q["reason"]) for q in quarantine]


# ------------------------------------------------------------------ row errors
def test_invalid_identity_code(tmp_path, landing, key):
    bad = A[:10] + ("0" if A[10] != "0" else "1")
    landing.csv("ttk", "2021-03", [TTK, [bad] + TTK[1:]])
    a, q, rows = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert (a.status, a.rows_read, a.rows_loaded, a.rows_quarantined) == ("loaded", 2, 1, 1)
    assert reasons(q) == [(3, "henkilotunnus: bad check character")]
    assert q[0] == {"partner": "ttk", "period": "2021-03", "file": "ttk_jaksot_202103.csv", "line": 3,
                    "reason": "henkilotunnus: bad check character"}


def test_required_field_empty(tmp_path, landing, key):
    landing.csv("ttk", "2021-03", [TTK, [B, "", "TE", "1.2.2021", "4.3.2021", "", "", "LAAKARI"]])
    a, q, _ = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert (a.rows_loaded, a.rows_quarantined) == (1, 1)
    assert reasons(q) == [(3, "kuntakoodi: required field empty")]


@pytest.mark.parametrize("value, reason", [
    ("31.2.2021", "alkupvm: not a valid date in format d.m.yyyy"),
    ("2021-03-04", "alkupvm: not a valid date in format d.m.yyyy"),
    ("4.3.21", "alkupvm: date outside 1900–2099"),
])
def test_date_that_does_not_exist_or_parse(tmp_path, landing, key, value, reason):
    landing.csv("ttk", "2021-03", [TTK, [B, "91", "TE", "1.2.2021", value, "", "", "LAAKARI"]])
    a, q, _ = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert reasons(q) == [(3, reason)] and a.rows_loaded == 1


def test_end_date_before_start(tmp_path, landing, key):
    landing.csv("kunta", "2021-03", [[A, "186", "TYOKOKEILU", "2021-03-10", "2021-03-01"]])
    a, q, _ = stage(tmp_path, landing, "kunta", "2021-03", key)
    assert (a.rows_loaded, a.rows_quarantined) == (0, 1)
    assert reasons(q) == [(2, "loppupvm is before alkupvm")]


def test_code_not_in_list(tmp_path, landing, key):
    landing.csv("te", "2021-03", [[A, "186", "1", "2021-03-01", "", "Järvenpää"],
                                  [B, "186", "11", "2021-03-01", "", "Järvenpää"]])
    a, q, _ = stage(tmp_path, landing, "te", "2021-03", key)
    assert reasons(q) == [(2, "TILA: not one of 01, 02, 03, 10, 11, 12, 13, 14, 15")] and a.rows_loaded == 1


@pytest.mark.parametrize("instrument, value, reason", [
    ("TKI", "11", "arvo: outside the TKI range 0–10 (whole numbers)"),
    ("TKI", "7,5", "arvo: outside the TKI range 0–10 (whole numbers)"),
    ("WHODAS12", "37,55", "arvo: outside the WHODAS12 range 0–100 (at most 1 decimal(s))"),
    ("PHQ9", "abc", "arvo: not a number (with decimal comma)"),
    ("AUDIT", "12.5", "arvo: not a number (with decimal comma)"),
])
def test_number_that_does_not_parse_or_is_out_of_range(tmp_path, landing, key, instrument, value, reason):
    landing.csv("mittarit", "2021-03", [[A, "3.3.2021", "WHODAS12", "ALKU", "37,5"],
                                        [B, "3.3.2021", instrument, "ALKU", value]])
    a, q, rows = stage(tmp_path, landing, "mittarit", "2021-03", key)
    assert reasons(q) == [(3, reason)]
    assert rows[0]["value"] == 37.5


def test_kela_amount_rules(tmp_path, landing, key):
    landing.kela("2021-03", [(A, "202103", "TMTU", 20, 70000, 35000), (B, "202103", "TMTU", 20, 70000, 70001),
                             (D, "202113", "TOTU", 0, 100, 0)])
    a, q, rows = stage(tmp_path, landing, "kela", "2021-03", key)
    assert reasons(q) == [(3, "kunnan_osuus exceeds maksettu"), (4, "kuukausi: not a month YYYYMM")]
    assert rows[0]["benefit"] == "TMTU" and str(rows[0]["paid_eur"]) == "700.00"
    assert str(rows[0]["municipal_share_eur"]) == "350.00" and rows[0]["month"] == dt.date(2021, 3, 1)


def test_typ_line_that_is_not_a_json_object(tmp_path, landing, key):
    ok = {"hetu": A, "kunta": "106", "alku": "2021-03-01", "loppu": None, "monialainen_suunnitelma": True}
    landing.typ("2021-03", [ok, '"just a string"', {**ok, "hetu": B, "monialainen_suunnitelma": "maybe"}])
    a, q, rows = stage(tmp_path, landing, "typ", "2021-03", key)
    assert reasons(q) == [(2, "not a JSON object"), (3, "monialainen_suunnitelma: not true or false")]
    assert (a.rows_read, a.rows_loaded) == (3, 1) and rows[0]["multisector_plan"] is True


def test_same_natural_key_with_different_content_quarantines_all(tmp_path, landing, key):
    other = TTK[:6] + ["TYO"] + TTK[7:]
    other[5] = "1.6.2021"
    landing.csv("ttk", "2021-03", [TTK, [B] + TTK[1:], other])
    a, q, rows = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert (a.rows_loaded, a.rows_quarantined) == (1, 2)
    assert reasons(q) == [(2, "natural key (henkilotunnus, alkupvm) appears with different content on lines 2, 4"),
                          (4, "natural key (henkilotunnus, alkupvm) appears with different content on lines 2, 4")]


def test_natural_key_matches_after_normalisation(tmp_path, landing, key):
    sloppy = [" " + A.lower() + " "] + TTK[1:4] + ["04.03.2021", "", "", "FYSIOTERAPEUTTI"]
    landing.csv("ttk", "2021-03", [TTK, sloppy])
    a, q, _ = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert a.rows_quarantined == 2 and "natural key" in q[0]["reason"]


def test_exact_repeat_loads_once(tmp_path, landing, key):
    landing.csv("ttk", "2021-03", [TTK, TTK, [B] + TTK[1:], TTK])
    a, q, rows = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert (a.rows_read, a.rows_loaded, a.rows_quarantined) == (4, 2, 2)
    assert reasons(q) == [(3, "exact repeat of line 2"), (5, "exact repeat of line 2")]


# ------------------------------------------------------------------ rejected deliveries
def rejected(tmp_path, landing, partner, period, key):
    a, q, rows = stage(tmp_path, landing, partner, period, key)
    assert a.status == "rejected" and (a.rows_loaded, a.rows_quarantined) == (0, 0) and not rows and not q
    state = json.loads((tmp_path / "staging" / partner / period / "delivery.json").read_text())
    assert state["last_attempt"]["status"] == "rejected" and state["loaded"] is None
    return a.reason


def test_reject_undecodable_file(tmp_path, landing, key):
    landing.raw("ttk", "2021-03", ("henkilotunnus;kuntakoodi;lahettava_taho;lahete_pvm;alkupvm;loppupvm;"
                                   "paattymissyy;vastuutyontekija\n" + ";".join(TTK) + "ä\n").encode("iso-8859-1"))
    assert "cannot be decoded as UTF-8 (first bad byte on line 2)" in rejected(tmp_path, landing, "ttk", "2021-03", key)


def test_reject_missing_required_column(tmp_path, landing, key):
    landing.csv("te", "2021-03", [[A, "186", "2021-03-01", "", "x"]], header="HETU;KUNTA;ALKUPVM;LOPPUPVM;KUNTANIMI")
    assert rejected(tmp_path, landing, "te", "2021-03", key) == "required column(s) missing from the header: TILA"


def test_reject_empty_and_header_only(tmp_path, landing, key):
    landing.raw("ttk", "2021-03", b"")
    assert rejected(tmp_path, landing, "ttk", "2021-03", key) == "the file is empty"
    landing.csv("ttk", "2021-04", [])
    assert "no data records" in rejected(tmp_path, landing, "ttk", "2021-04", key)


def test_reject_spreadsheet_that_cannot_be_opened(tmp_path, landing, key):
    landing.raw("valmennus", "2021-03", b"PK\x03\x04 this is not a workbook")
    assert "cannot be opened as an XLSX workbook" in rejected(tmp_path, landing, "valmennus", "2021-03", key)


def test_reject_spreadsheet_without_its_sheet(tmp_path, landing, key):
    landing.valmennus("2021-03", [[A, "1.3.2021", None, None, None, None, None]], sheet="Taul1")
    assert rejected(tmp_path, landing, "valmennus", "2021-03", key) == \
        "the workbook has no sheet 'Asiakkaat' (it has: Taul1)"


@pytest.mark.parametrize("kwargs, reason", [
    ({"header": False}, "the header record (ALKU + period + creation date) is missing or malformed"),
    ({"trailer": False}, "the trailer record (LOPPU + record count) is missing: the file is incomplete"),
    ({"trailer_count": 3}, "the trailer counts 3 records but the file holds 2: the file is incomplete"),
])
def test_reject_kela_header_trailer_count(tmp_path, landing, key, kwargs, reason):
    landing.kela("2021-03", [(A, "202103", "TMTU", 20, 70000, 35000), (B, "202103", "PPR", 20, 70000, 0)], **kwargs)
    assert reason in rejected(tmp_path, landing, "kela", "2021-03", key)


def test_reject_kela_without_crlf(tmp_path, landing, key):
    p = landing.kela("2021-03", [(A, "202103", "TMTU", 20, 70000, 35000)])
    p.write_bytes(p.read_bytes().replace(b"\r\n", b"\n"))
    assert "CRLF" in rejected(tmp_path, landing, "kela", "2021-03", key)


def test_kela_file_cut_short_while_it_streams_is_rejected_and_the_loaded_version_stays(tmp_path, landing, key,
                                                                                        monkeypatch):
    """A Kela file is checked whole, then read again a block at a time: a file changed in between
    (a transfer still writing it) rejects the delivery, and the version loaded before stays."""
    from schemas.readers import fixed_width

    records = [(A, "202103", "TMTU", 20, 70000, 35000), (B, "202103", "PPR", 20, 70000, 0),
               (D, "202103", "PPR", 3, 1234, 0)]
    landing.kela("2021-03", records[:1])
    assert stage(tmp_path, landing, "kela", "2021-03", key)[0].rows_loaded == 1
    path = landing.kela("2021-03", records)
    checked_whole = fixed_width.read

    def then_cut(contract, p, period):
        result = checked_whole(contract, p, period)
        p.write_bytes(p.read_bytes()[:70])   # the header and one record are left
        return result

    monkeypatch.setattr(fixed_width, "read", then_cut)
    monkeypatch.setattr(fixed_width, "BLOCK_ROWS", 1)
    attempt, _, loaded = stage(tmp_path, landing, "kela", "2021-03", key)
    assert (attempt.status, attempt.reason) == ("rejected", "the file changed while it was read: deliver it again")
    assert len(loaded) == 1 and not list((tmp_path / "staging" / "kela").glob("*.new"))
    state = json.loads((tmp_path / "staging" / "kela" / "2021-03" / "delivery.json").read_text())
    assert state["loaded"]["rows_loaded"] == 1 and state["last_attempt"]["status"] == "rejected"
    assert path.stat().st_size == 70


def test_reject_folder_with_several_files(tmp_path, landing, key):
    landing.csv("ttk", "2021-03", [TTK])
    landing.csv("ttk", "2021-03", [TTK], name="ttk_jaksot_202103_korjattu.csv")
    assert "the folder holds 2 files" in rejected(tmp_path, landing, "ttk", "2021-03", key)


def test_reject_file_name_not_matching_partner(tmp_path, landing, key):
    landing.csv("ttk", "2021-03", [TTK], name="te_tilat_202103.csv")
    assert "does not match ttk's 'ttk_jaksot_{period}.csv'" in rejected(tmp_path, landing, "ttk", "2021-03", key)
    landing.csv("ttk", "2021-04", [TTK], name="ttk_jaksot_202105.csv")
    assert "for another period than its folder" in rejected(tmp_path, landing, "ttk", "2021-04", key)


# ------------------------------------------------------------------ versions
def test_rejected_redelivery_keeps_previous_version(tmp_path, landing, key):
    landing.csv("ttk", "2021-03", [TTK, [B] + TTK[1:]])
    first, _, rows = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert first.rows_loaded == 2
    landing.raw("ttk", "2021-03", b"")  # a broken re-delivery
    d = landing_zone.scan_partner(landing.root, C["ttk"], "2021-03")
    assert staging.needs_staging(tmp_path / "staging", d, C["ttk"], key)
    a, _, rows_after = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert a.status == "rejected" and rows_after == rows
    state = json.loads((tmp_path / "staging/ttk/2021-03/delivery.json").read_text())
    assert state["loaded"]["rows_loaded"] == 2 and state["last_attempt"]["reason"] == "the file is empty"


def test_corrected_redelivery_replaces_period_and_unchanged_is_skipped(tmp_path, landing, key):
    landing.csv("ttk", "2021-03", [TTK, [B] + TTK[1:]])
    stage(tmp_path, landing, "ttk", "2021-03", key)
    d = landing_zone.scan_partner(landing.root, C["ttk"], "2021-03")
    assert not staging.needs_staging(tmp_path / "staging", d, C["ttk"], key)
    (landing.root / "ttk/2021-03/ttk_jaksot_202103.csv").unlink()
    landing.csv("ttk", "2021-03", [[D] + TTK[1:]])
    d = landing_zone.scan_partner(landing.root, C["ttk"], "2021-03")
    assert staging.needs_staging(tmp_path / "staging", d, C["ttk"], key)
    a, _, rows = stage(tmp_path, landing, "ttk", "2021-03", key)
    assert a.rows_loaded == 1 and [r["pseudonym"] for r in rows] == [key.pseudonym(D)]


def test_staging_never_holds_the_raw_code(tmp_path, landing, key):
    landing.csv("ttk", "2021-03", [TTK, [" " + B.lower()] + TTK[1:], [A[:10] + "Q"] + TTK[1:]])
    stage(tmp_path, landing, "ttk", "2021-03", key)
    for f in (tmp_path / "staging").rglob("*"):
        if f.is_file():
            text = json.dumps(pq.read_table(f).to_pylist(), default=str) if f.suffix == ".parquet" else f.read_text()
            for code in (A, B, B.lower(), A[:10] + "Q", A[:6]):
                assert code not in text, f"{code} in {f.name}"


def test_a_delivery_checked_in_blocks_gives_what_one_piece_gives(tmp_path, landing, key, monkeypatch):
    """A national month is read and checked a block at a time; repeats and conflicts of a key
    across blocks are found as within one, and every line keeps its own number."""
    from schemas.readers import fixed_width

    records = [(A, "202103", "TMTU", 20, 70000, 35000), (B, "202103", "TMTU", 20, 70000, 70001),
               (D, "202103", "PPR", 3, 1234, 0), (A, "202103", "TMTU", 20, 70000, 35000),
               (D, "202103", "PPR", 4, 1234, 0), (B, "202103", "TOTU", 0, 500, 250)]
    landing.kela("2021-03", records)
    whole = stage(tmp_path / "whole", landing, "kela", "2021-03", key)
    monkeypatch.setattr(fixed_width, "BLOCK_ROWS", 2)
    monkeypatch.setattr(staging, "CHUNK_ROWS", 2)
    table = fixed_width.read(C["kela"], next((landing.root / "kela" / "2021-03").iterdir()), "2021-03").table
    assert table.column("etuus").num_chunks == 3 and table.num_rows == 6
    blocks = stage(tmp_path / "blocks", landing, "kela", "2021-03", key)
    assert reasons(blocks[1]) == reasons(whole[1]) == [
        (3, "kunnan_osuus exceeds maksettu"), (4, "natural key (hetu, kuukausi, etuus) appears with different "
                                                  "content on lines 4, 6"),
        (5, "exact repeat of line 2"), (6, "natural key (hetu, kuukausi, etuus) appears with different content "
                                           "on lines 4, 6")]
    assert blocks[2] == whole[2] and [r["source_line"] for r in blocks[2]] == [2, 7]


def test_loaded_rows_keep_line_order_across_chunks_and_threads(tmp_path, landing, key, monkeypatch):
    """Staged rows are written in line order: without a sort, as chunks go into DuckDB in line order
    and DuckDB keeps insertion order across its threads (several row groups per chunk here); sorted
    when a withdrawn person's rows are erased on the way (that join writes blocks out of order)."""
    import numpy as np

    from pipelines.synth import make_codes
    from schemas.readers import fixed_width

    codes, _, _ = make_codes(np.random.default_rng(5), 300_000)
    landing.kela("2021-03", [(c, "202103", "TMTU", 20, 70000 + i % 7, 35000) for i, c in enumerate(codes)])
    monkeypatch.setattr(fixed_width, "BLOCK_ROWS", 130_000)
    monkeypatch.setattr(staging, "CHUNK_ROWS", 130_000)
    d = landing_zone.scan_partner(landing.root, C["kela"], "2021-03")
    attempt = staging.stage_delivery(tmp_path / "staging", d, C["kela"], key)
    rows = pq.read_table(tmp_path / "staging/kela/2021-03/rows.parquet", columns=["source_line", "paid_eur"])
    assert attempt.rows_loaded == rows.num_rows == 300_000
    assert rows.column("source_line").to_pylist() == list(range(2, 300_002))
    assert [float(v) for v in rows.column("paid_eur").to_pylist()[:8]] == [700.0, 700.01, 700.02, 700.03, 700.04, 700.05, 700.06, 700.0]
    # a withdrawn person's rows are erased as they are written (a join): the rest stay in line order
    withdrawn = hashlib.sha256(key.pseudonym(str(codes[1000])).encode()).hexdigest()
    erasure = staging.Withdrawal(pa.table({"erasure_token": [withdrawn]}), "test")
    attempt = staging.stage_delivery(tmp_path / "erased", d, C["kela"], key, withdrawal=erasure)
    lines = pq.read_table(tmp_path / "erased/kela/2021-03/rows.parquet", columns=["source_line"]).column(0).to_pylist()
    assert attempt.rows_erased == 1 and lines == [n for n in range(2, 300_002) if n != 1002]


def test_a_natural_key_with_an_empty_part_matches_nothing(tmp_path, landing, key):
    """As SQL equality has it (and staging always had it): rows whose key has an empty part all load."""
    import dataclasses

    te = dataclasses.replace(C["te"], natural_key=("HETU", "LOPPUPVM"))  # an optional column in the key
    landing.csv("te", "2021-03", [[A, "186", "01", "2021-03-01", "", "Järvenpää"],
                                  [A, "186", "02", "2021-03-05", "", "Järvenpää"],
                                  [B, "186", "01", "2021-03-01", "2021-03-09", "Järvenpää"],
                                  [B, "186", "01", "2021-03-01", "2021-03-09", "Järvenpää"]])
    d = landing_zone.scan_partner(landing.root, te, "2021-03")
    attempt = staging.stage_delivery(tmp_path / "staging", d, te, key)
    q = pq.read_table(tmp_path / "staging/te/2021-03/quarantine.parquet").to_pylist()
    assert (attempt.rows_loaded, attempt.rows_quarantined) == (3, 1)
    assert reasons(q) == [(5, "exact repeat of line 4")]


@pytest.mark.parametrize("fewest, most, pattern", [(3, None, "[0-9]{3}"), (6, None, "[0-9]{6}"), (1, 3, "[0-9]{1,3}")])
def test_digit_checks_match_the_regular_expression_they_replace(fewest, most, pattern):
    """The digit checks are GLOB patterns for speed; they accept exactly what the regular expression did."""
    import duckdb

    from schemas.casting import digits_sql

    values = ["1", "12", "123", "1234", "123456", "1234567", "", " 12", "12 ", "-12", "+12", "1a2", "١٢٣", "１２３",
              "12\n", "1e2", "[0-9]", "1?3", "1*", "12.0"]
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT v, {digits_sql('v', fewest, most)}, regexp_full_match(v, '{pattern}') "
                           "FROM (SELECT unnest(?) AS v)", [values]).fetchall()
    assert [v for v, glob, regex in rows if glob != regex] == []
    assert sum(glob for _, glob, _ in rows) == {3: 1, 6: 1, 1: 3}[fewest]
