"""Typed values written as the contract says, and read back by the readers to the same rows.

The synthetic generator writes every delivery through these functions, so what is proved here
holds for its landing zones: change a contract and the generator's files follow it.
"""
import dataclasses
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from schemas import load_contracts
from schemas.readers import read_delivery
from schemas.rendering import render, render_column
from schemas.writers import fill_pattern, write_file
from tests.landing_writer import hetu

C = load_contracts()
CODES = [hetu(1, 2, 1980, 123), hetu(15, 11, 1975, 456), hetu(3, 3, 2001, 20, "B")]
DAYS = np.array(["2021-03-01", "2022-12-31", "NaT"], dtype="datetime64[D]")


def test_dates_numbers_codes_and_flags_in_the_partners_spelling():
    ttk, kela, mittarit = C["ttk"], C["kela"], C["mittarit"]
    assert render_column(ttk.column("alkupvm"), DAYS).to_pylist() == ["1.3.2021", "31.12.2022", None]
    assert render_column(C["te"].column("ALKUPVM"), DAYS).to_pylist() == ["2021-03-01", "2022-12-31", None]
    assert render_column(kela.column("kuukausi"), DAYS[:2]).to_pylist() == ["202103", "202212"]
    assert render_column(kela.column("maksettu"), [6450, 0]).to_pylist() == ["0000006450", "0000000000"]
    assert render_column(kela.column("paivat"), [7, 21]).to_pylist() == ["007", "021"]
    assert render_column(mittarit.column("arvo"), [37.5, 20.0, -0.0]).to_pylist() == ["37,5", "20", "0"]
    coaching = C["valmennus"].column("Työsuhteen tyyppi")
    assert render_column(coaching, pa.array(["AVOIN", "TYOKOKEILU", None, "outside"])).to_pylist() == \
        ["Avoin", "Työkokeilu", None, "outside"]
    assert render_column(C["typ"].column("monialainen_suunnitelma"), [True, False]).to_pylist() == ["true", "false"]
    assert render_column(ttk.column("kuntakoodi"), pa.array(["91"])).to_pylist() == ["91"]  # text as given
    with pytest.raises(KeyError, match="no column is stored as"):
        render(ttk, CODES, {"nonsense": DAYS})


def test_header_and_trailer_records_filled_from_the_contract_patterns():
    spec = C["kela"].file
    assert fill_pattern(spec["header"]["pattern"], period="202103", created="20210331") == "ALKU20210320210331"
    assert fill_pattern(spec["trailer"]["pattern"], count=42) == "LOPPU000000042"
    with pytest.raises(ValueError, match="cannot fill"):
        fill_pattern(spec["header"]["pattern"], period="2021-03", created="20210331")


TYPED = {
    "te": {"municipality": np.array(["186", "091", "245"]), "status": np.array(["01", "11", "15"]),
           "start_date": DAYS[[0, 1, 0]], "end_date": DAYS, "municipality_name": np.array(["Järvenpää", "Helsinki",
                                                                                            "Kerava"])},
    "kela": {"month": DAYS[[0, 1, 1]], "benefit": np.array(["TMTU", "PPR", "TOTU"]), "days": [21, 3, 0],
             "paid_eur": [70000, 1234, 5], "municipal_share_eur": [35000, 0, 2]},
    "ttk": {"municipality": pa.array(["91", "186", "245"]), "referral_source": np.array(["TE", "OMA", "KELA"]),
            "referral_date": DAYS[[0, 0, 1]], "start_date": DAYS[[0, 1, 1]], "end_date": DAYS,
            "end_reason": pa.array(["TYO", None, None]), "worker_role": np.array(["LAAKARI"] * 3)},
    "typ": {"municipality": np.array(["186", "405", "698"]), "start_date": DAYS[[0, 1, 0]], "end_date": DAYS,
            "multisector_plan": [True, False, True]},
    "kunta": {"municipality": np.array(["186", "405", "698"]), "service": np.array(["TYOKOKEILU"] * 3),
              "start_date": DAYS[[0, 1, 0]], "end_date": DAYS},
    "valmennus": {"coaching_start": DAYS[[0, 1, 0]], "coaching_end": DAYS,
                  "contract_type": pa.array(["OPPISOPIMUS", None, "AVOIN"]), "hours_per_week": [37.5, None, 20.0]},
}


@pytest.mark.parametrize("partner", sorted(TYPED))
def test_written_as_the_contract_says_and_read_back(partner, tmp_path):
    contract = C[partner]
    if contract.format == "xlsx":
        table = render(contract, CODES, TYPED[partner], typed=True)
        path = write_file(contract, table, tmp_path, "2022-12", "20221231", pa.array([False, True, False]))
    else:
        table = render(contract, CODES, TYPED[partner])
        path = write_file(contract, table, tmp_path, "2022-12", "20221231")
    assert contract.file_name_regex().match(path.name) and "202212" in path.name
    read = read_delivery(contract, path, "2022-12")
    assert not read.row_errors and read.table.column("_line").to_pylist() == \
        ([1, 2, 3] if contract.format == "jsonl" else [2, 3, 4])
    got = read.table.drop_columns(["_line"]).to_pylist()
    if contract.format == "xlsx":  # date cells come back as ISO text, dates typed by hand as written
        assert got[0]["Valmennus alkoi"] == "2021-03-01" and got[1]["Valmennus alkoi"] == "31.12.2022"
        assert got[0]["Työaika h/vko"] in ("37.5", "37,5") and got[1]["Työaika h/vko"] is None
        assert [r["Työsuhteen tyyppi"] for r in got] == ["Oppisopimus", None, "Avoin"]
    elif contract.format == "fixed_width":  # a field keeps its padding until validation trims it
        assert [{k: v.rstrip() for k, v in r.items()} for r in got] == table.to_pylist()
        assert got[1]["etuus"] == "PPR "
    else:
        assert got == table.to_pylist()
    data = path.read_bytes()
    if contract.format in ("delimited", "fixed_width"):
        assert data.startswith(b"\xef\xbb\xbf") == bool(contract.file.get("bom"))
        assert data.count(b"\r\n") == (data.count(b"\n") if contract.file.get("line_end") == "\r\n" else 0)


def test_a_changed_contract_changes_the_files(tmp_path):
    """Nothing about the file is the writer's own choice: edit the contract, the file follows."""
    te = C["te"]
    edited = dataclasses.replace(te, file={**te.file, "name": "tilat-{period}.txt", "delimiter": "|",
                                           "encoding": "utf-8", "bom": True, "line_end": "\n"})
    path = write_file(edited, render(edited, CODES, TYPED["te"]), tmp_path, "2021-03", "20210331")
    assert path.name == "tilat-202103.txt"
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfHETU|KUNTA|TILA|") and b"\r\n" not in data
    assert "Järvenpää".encode() in data  # UTF-8 now, not ISO-8859-1
    assert read_delivery(edited, path, "2021-03").table.num_rows == 3
    assert dt.date(2021, 3, 1).strftime("%Y-%m-%d").encode() in data


def test_a_value_holding_a_line_break_keeps_every_later_line_in_place(tmp_path):
    """A quoted value may hold LF, CRLF or a lone CR: each is a line break to the reader, so the
    records after it stay on their lines when a delivery is written back (partner-side export)."""
    from schemas.writers import write_delimited

    kunta = C["kunta"]
    values = ["a\nb", "a\r\nb", "a\rb", "plain"]
    table = pa.table({"hetu": pa.array(CODES[:1] * 4), "kunta": pa.array(["186"] * 4),
                      "palvelu": pa.array(values), "alkupvm": pa.array(["2021-03-01"] * 4),
                      "loppupvm": pa.array([None] * 4, pa.string()), "_line": pa.array([2, 4, 6, 9], pa.int64())})
    path = tmp_path / "kunta_palvelut_202103.csv"
    write_delimited(kunta, table, path)
    read = read_delivery(kunta, path, "2021-03").table
    assert read.column("_line").to_pylist() == [2, 4, 6, 9]
    assert read.column("palvelu").to_pylist() == values
