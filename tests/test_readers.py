"""Readers, one per file-format family, on the shared samples and on edge cases."""
import datetime as dt
import json
from pathlib import Path

import pytest

from pipelines import landing as landing_zone
from schemas import load_contracts
from schemas.readers import DeliveryRejected, read_delivery
from tests.conftest import SAMPLE_EXPECTED, SAMPLE_LANDING
from tests.landing_writer import hetu

C = load_contracts()
A = hetu(1, 2, 1980, 123)
B = hetu(2, 3, 1975, 456)


def read(path: Path, partner: str, period: str):
    return read_delivery(C[partner], path, period)


def test_sample_deliveries_load_with_their_row_counts():
    deliveries, warnings = landing_zone.scan(SAMPLE_LANDING, C)
    assert not warnings and all(d.problem is None for d in deliveries)
    counts: dict[str, int] = {}
    for d in deliveries:
        if d.partner == "suostumukset" and d.period != "2022-12":
            continue  # expected counts the latest snapshot only
        counts[d.partner] = counts.get(d.partner, 0) + read(d.file, d.partner, d.period).rows_read
    assert counts == SAMPLE_EXPECTED["rows_per_partner_including_invalid"]


def test_delimited_bom_lines_and_field_count(landing):
    p = landing.csv("ttk", "2021-03", [
        [A, "91", "TE", "1.2.2021", "4.3.2021", "", "", "LAAKARI"],
        [B, "543", "TE", "1.2.2021"],                       # too few fields
        [],                                                  # blank line: not a record
        [A, "91", "TE", "1.2.2021", "5.3.2021", "", "", "LAAKARI"],
    ])
    r = read(p, "ttk", "2021-03")
    assert r.table.column("_line").to_pylist() == [2, 5]
    assert r.row_errors == [(3, "expected 8 fields, found 4")]
    assert r.table.column("henkilotunnus").to_pylist() == [A, A]  # BOM stripped from the header
    assert r.rows_read == 3


def test_latin1_te_file(landing):
    p = landing.csv("te", "2021-01", [[A, "186", "01", "2021-01-01", "", "Järvenpää"]])
    r = read(p, "te", "2021-01")
    assert r.table.column("KUNTANIMI").to_pylist() == ["Järvenpää"]


def test_quoted_kunta_fields(landing):
    p = landing.csv("kunta", "2021-01", [[f'"{A}"', '"186"', '"TYOKOKEILU"', '"2021-01-04"', ""],
                                         [f'"{B}"', '"186"', '"KOULUTUS"', '"2021-01-05"', '"2021-02-01"']])
    r = read(p, "kunta", "2021-01")
    assert r.table.column("hetu").to_pylist() == [A, B]
    assert r.table.column("loppupvm").to_pylist() == [None, "2021-02-01"]


def test_fixed_width_slices_positions(landing):
    p = landing.kela("2021-01", [(A, "202101", "PPR", 20, 123456, 0), (B, "202101", "TMTU", 21, 70000, 35000)])
    r = read(p, "kela", "2021-01")
    t = r.table.to_pylist()
    assert t[0]["etuus"] == "PPR " and t[0]["maksettu"] == "0000123456" and t[1]["kunnan_osuus"] == "0000035000"
    assert [x["_line"] for x in t] == [2, 3]


def test_fixed_width_record_of_wrong_length_is_a_row_error(landing):
    p = landing.kela("2021-01", [(A, "202101", "PPR", 20, 123456, 0)])
    data = p.read_bytes().replace(b"\r\nLOPPU", b"\r\nSHORT\r\nLOPPU").replace(b"LOPPU000000001", b"LOPPU000000002")
    p.write_bytes(data)
    r = read(p, "kela", "2021-01")
    assert r.row_errors == [(3, "record is 5 characters long, expected 44")] and r.rows_read == 2


@pytest.mark.parametrize("other", [False, True])
def test_fixed_width_blank_fields_are_null_in_ascii_and_other_records(landing, other):
    """Printable-ASCII records take the byte-slicing path, a block with any other character the
    character path: a blank field (spaces, or a tab) is NULL in either."""
    p = landing.kela("2021-01", [(A, "202101", "PPR", 20, 123456, 0)])
    head, first = p.read_bytes().split(b"\r\n")[:2]
    blank = A.encode() + b"202101" + b"    " + b"   " + b"0000000100" + b"          "
    records = [first, blank] + ([A.encode() + b"202101" + "PPRÄ".encode("latin-1") + b"\t\t\t" + b"0" * 20]
                                if other else [])
    p.write_bytes(b"\r\n".join([head, *records, b"LOPPU%09d" % len(records), b""]))
    r = read(p, "kela", "2021-01")
    t = r.table.to_pylist()
    assert not r.row_errors and [x["_line"] for x in t] == [2, 3, 4][:len(records)]
    assert (t[0]["etuus"], t[0]["paivat"], t[0]["maksettu"]) == ("PPR ", "020", "0000123456")
    assert (t[1]["etuus"], t[1]["paivat"], t[1]["maksettu"], t[1]["kunnan_osuus"]) == (None, None, "0000000100", None)
    if other:
        assert (t[2]["etuus"], t[2]["paivat"]) == ("PPRÄ", None)


def test_fixed_width_byte_slices_equal_character_slices():
    import random

    import pyarrow as pa

    from schemas.readers.fixed_width import _ascii_field, _text_field
    rng = random.Random(7)
    alphabet = [chr(i) for i in range(32, 127)]
    records = ["".join(rng.choice(alphabet + [" "] * 40) for _ in range(12)) for _ in range(3000)]
    records += [" " * 12, "a" + " " * 11, " " * 11 + "z"]
    block = pa.array(records).slice(5)   # as a block of a delivery: an offset into the records
    for start, end in [(0, 1), (0, 4), (3, 9), (11, 12), (0, 12)]:
        assert _ascii_field(block, start, end).equals(_text_field(block, start, end))


def _whole_file_read(contract, raw: bytes):
    """What the reader did before it streamed: the whole file split into lines by pyarrow at once."""
    from schemas.readers.fixed_width import _lines

    lines = _lines(raw, contract.encoding).to_pylist()
    records = lines[1:-1]
    length = contract.file["record_length"]
    errors = [(n, f"record is {len(r)} characters long, expected {length}")
              for n, r in enumerate(records, start=2) if len(r) != length]
    kept = [(n, r) for n, r in enumerate(records, start=2) if len(r) == length]
    return lines, errors, kept


def test_fixed_width_line_count_and_edge_lines_equal_a_whole_file_split():
    """The first pass counts lines as pyarrow splits them (CR, LF, CRLF; a final line end adds
    none) in chunks that never cut a line: on random runs of line ends, blanks and text, for
    chunk sizes down to one byte, it finds pyarrow's count, first line and last line."""
    import io
    import random

    from schemas.readers import fixed_width

    rng = random.Random(11)
    pieces = [b"a", b"bc", b" ", b"\r", b"\n", b"\r\n", b"\n\r", b"\xe4"]
    for _ in range(400):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        lines = fixed_width._lines(raw, "iso-8859-1").to_pylist()
        for size in (1, 2, 3, 7, 64):
            chunks = list(fixed_width._aligned(io.BytesIO(raw), size))
            assert b"".join(chunks) == raw and all(c.endswith(b"\n") for c in chunks[:-1])
            count = sum(c.count(b"\n") + c.count(b"\r") - c.count(b"\r\n") for c in chunks)
            count += chunks[-1][-1:] not in (b"\r", b"\n")
            assert count == len(lines), raw
            assert fixed_width._last_line(chunks[-1]).decode("latin-1") == lines[-1], raw


@pytest.mark.parametrize("block_rows", [1, 2, 3, 1000])
def test_fixed_width_streamed_in_blocks_equals_the_whole_file_read(tmp_path, monkeypatch, block_rows):
    """Records of the wrong length (short, long, empty, split by a lone CR), a non-ASCII record and
    a missing final line end: read a block at a time, every record keeps its line number, every
    error its line, and the fields are those of the whole file split at once."""
    from schemas.readers import fixed_width

    contract = C["kela"]
    good = [f"{A:<11}202101PPR 020{i:010d}0000000000".encode() for i in range(9)]
    body = [good[0], b"SHORT", good[1], b"", good[2], good[3] + b"X", good[4][:20] + b"\r" + good[4][20:],
            "{:<11}202101TKE\xe4020{:010d}0000000000".format(B, 5).encode("latin-1")[:44], good[5], good[6]]
    raw = b"\r\n".join([b"ALKU20210120210128", *body, b"LOPPU%09d" % (len(body) + 1)])  # no final CRLF
    path = tmp_path / "kela_etuudet_202101.txt"
    path.write_bytes(raw)
    lines, errors, kept = _whole_file_read(contract, raw)
    monkeypatch.setattr(fixed_width, "BLOCK_ROWS", block_rows)
    result = read_delivery(contract, path, "2021-01")
    assert result.rows_read == len(lines) - 2 == 11
    pieces = list(result.pieces(block_rows))
    assert len(pieces) >= min(len(kept), 11 // block_rows) and result.row_errors == errors
    table = __import__("pyarrow").concat_tables(pieces)
    assert table.column("_line").to_pylist() == [n for n, _ in kept]
    assert [r["hetu"] + r["kuukausi"] + r["etuus"] + r["paivat"] + r["maksettu"] + r["kunnan_osuus"]
            for r in table.to_pylist()] == [r for _, r in kept]
    assert len(errors) == 5 and table.num_rows == 6 and table.column("etuus").to_pylist()[3] == "TKE\xe4"


def test_fixed_width_file_is_checked_whole_before_a_row_is_handed_on(tmp_path, monkeypatch):
    """Everything that rejects the file is found before the first block: a bad trailer count
    at the end of a file of many blocks rejects it at read, with no block cut."""
    from schemas.readers import fixed_width

    cut = []
    monkeypatch.setattr(fixed_width, "BLOCK_ROWS", 2)
    monkeypatch.setattr(fixed_width, "SURVEY_BYTES", 50)
    monkeypatch.setattr(fixed_width, "_fields", lambda *a: cut.append(1))
    records = [f"{A:<11}202101PPR 020{i:010d}0000000000".encode() for i in range(9)]
    path = tmp_path / "kela_etuudet_202101.txt"
    path.write_bytes(b"\r\n".join([b"ALKU20210120210128", *records, b"LOPPU000000010", b""]))
    with pytest.raises(DeliveryRejected, match="the trailer counts 10 records but the file holds 9"):
        read_delivery(C["kela"], path, "2021-01")
    path.write_bytes(b"\r\n".join([b"ALKU20210120210128", *records[:4], b"\xe4" * 44, *records[4:],
                                    b"LOPPU000000010", b""]).replace(b"\r\n", b"\n", 1))
    with pytest.raises(DeliveryRejected, match="CRLF"):
        read_delivery(C["kela"], path, "2021-01")
    assert cut == []


@pytest.mark.parametrize("change", ["replaced", "rewritten", "appended"])
def test_fixed_width_file_changed_after_its_check_is_rejected_not_read(tmp_path, monkeypatch, change):
    """The records are read again after the whole file is checked: a file replaced (another inode)
    or written to in between (its size or modification time differs) is rejected, never read as
    the file that was checked, here one of the same size for another period."""
    import os

    from schemas.readers import fixed_width

    monkeypatch.setattr(fixed_width, "BLOCK_ROWS", 1)
    records = [f"{A:<11}202101PPR 020{i:010d}0000000000".encode() for i in range(3)]
    path = tmp_path / "kela_etuudet_202101.txt"
    checked = b"\r\n".join([b"ALKU20210120210128", *records, b"LOPPU000000003", b""])
    path.write_bytes(checked)
    result = read_delivery(C["kela"], path, "2021-01")
    other = checked.replace(b"ALKU202101", b"ALKU202102")
    if change == "replaced":
        (tmp_path / "other").write_bytes(other)
        os.replace(tmp_path / "other", path)
    elif change == "rewritten":
        before = path.stat()
        with open(path, "r+b") as f:
            f.write(other)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))  # whatever the clock's grain
    else:
        with open(path, "ab") as f:
            f.write(records[0] + b"\r\n")
    with pytest.raises(DeliveryRejected, match="^the file changed while it was read: deliver it again$"):
        list(result.pieces(1))
    with pytest.raises(RuntimeError, match="taken already"):
        result.table


@pytest.mark.parametrize("block_rows", [1, 2, 1000])
def test_fixed_width_utf8_byte_order_marks_are_read_as_in_one_piece(tmp_path, monkeypatch, block_rows):
    """In a UTF-8 contract, a byte-order mark before the header is dropped (as pyarrow does at the
    start of a file), and a record that begins with U+FEFF keeps it wherever a block begins."""
    import yaml

    from schemas.contract import load_contract
    from schemas.readers import fixed_width

    raw = yaml.safe_load((Path(__file__).parent.parent / "schemas" / "kela.yaml").read_text())
    raw["file"].update(encoding="utf-8", line_end="\n")
    (tmp_path / "kela.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    contract = load_contract(tmp_path / "kela.yaml")
    good = [f"{A:<11}202101PPR 020{i:010d}0000000000" for i in range(4)]
    body = [good[0], "\ufeff" + good[1][1:], good[2], "\ufeff" + good[3][1:]]
    data = ("\ufeff" + "\n".join(["ALKU20210120210128", *body, "LOPPU000000004"]) + "\n").encode()
    path = tmp_path / "kela_etuudet_202101.txt"
    path.write_bytes(data)
    _, errors, kept = _whole_file_read(contract, data)
    assert errors == [] and len(kept) == 4
    monkeypatch.setattr(fixed_width, "BLOCK_ROWS", block_rows)
    table = read_delivery(contract, path, "2021-01").table
    assert table.column("hetu").to_pylist() == [r[:11] for _, r in kept]
    assert table.column("_line").to_pylist() == [2, 3, 4, 5]


def test_xlsx_excel_dates_and_typed_dates(landing):
    p = landing.valmennus("2021-06", [
        [A, dt.datetime(2021, 6, 7), None, "1.8.2021", "Avoin", 37.5, "G"],
        [B, "3.6.2021", None, None, None, None, None],
        [None, None, None, None, None, None, None],  # an empty row is skipped
    ])
    r = read(p, "valmennus", "2021-06")
    t = r.table.to_pylist()
    assert [x["Valmennus alkoi"] for x in t] == ["2021-06-07", "3.6.2021"]
    assert t[0]["Työllistymispäivä"] == "1.8.2021" and t[0]["Työaika h/vko"] == "37.5"
    assert [x["_line"] for x in t] == [2, 3]


def test_jsonl_not_an_object_and_not_json(landing):
    obj = {"hetu": A, "kunta": "106", "alku": "2021-03-01", "loppu": None, "monialainen_suunnitelma": True}
    p = landing.typ("2021-03", [obj, "[1, 2]", "{broken", json.dumps({**obj, "hetu": B, "kunta": 106})])
    r = read(p, "typ", "2021-03")
    assert r.row_errors == [(2, "not a JSON object"), (3, "not valid JSON")]
    t = r.table.to_pylist()
    assert [x["_line"] for x in t] == [1, 4]
    assert t[0]["monialainen_suunnitelma"] == "true" and t[0]["loppu"] is None and t[1]["kunta"] == "106"


@pytest.mark.parametrize("partner, content, reason", [
    ("ttk", b"\xef\xbb\xbfhenkilotunnus;kuntakoodi\n\xe4\xe4\n", "cannot be decoded as UTF-8 (first bad byte on line 2)"),
    ("ttk", b"", "the file is empty"),
    ("ttk", b"\xef\xbb\xbfhenkilotunnus;kuntakoodi;lahettava_taho;lahete_pvm;alkupvm;loppupvm;paattymissyy;vastuutyontekija\n",
     "no data records"),
    ("ttk", b"\xef\xbb\xbfhenkilotunnus;kuntakoodi\n1;2\n", "required column(s) missing from the header: lahettava_taho"),
    ("typ", b"\n\n", "no data records"),
])
def test_rejections_by_content(landing, partner, content, reason):
    p = landing.raw(partner, "2021-03", content)
    with pytest.raises(DeliveryRejected, match=None) as e:
        read(p, partner, "2021-03")
    assert reason in str(e.value)


def test_rejections_are_never_quoting_content(landing):
    p = landing.raw("ttk", "2021-03", b"\xef\xbb\xbf" + A.encode() + b"\n")
    with pytest.raises(DeliveryRejected) as e:
        read(p, "ttk", "2021-03")
    assert A not in str(e.value)


@pytest.mark.parametrize("start, end", [(40, 45), (0, 3), (5, 4)])
def test_fixed_width_column_outside_the_record_is_a_contract_error(tmp_path, start, end):
    """Every field of a record is non-empty and inside it (the byte path relies on it)."""
    import yaml

    from schemas.contract import ContractError, load_contract
    raw = yaml.safe_load((Path(__file__).parent.parent / "schemas" / "kela.yaml").read_text())
    raw["columns"][-1].update(start=start, end=end)
    (tmp_path / "kela.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ContractError, match="does not lie within the record"):
        load_contract(tmp_path / "kela.yaml")


def test_a_natural_key_without_the_identity_code_is_a_contract_error(tmp_path):
    """A later version of a record must be of the same person: the kb build's refresh by person relies on it."""
    import yaml

    from schemas.contract import ContractError, load_contract
    raw = yaml.safe_load((Path(__file__).parent.parent / "schemas" / "te.yaml").read_text())
    raw["natural_key"] = ["ALKUPVM"]
    (tmp_path / "te.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ContractError, match="natural key must include the identifier column 'HETU'"):
        load_contract(tmp_path / "te.yaml")
