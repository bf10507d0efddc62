"""Fault injection: a hostile partner and a careless operator against the whole pipeline.

One landing zone holds many faults at once (codes in names and free text, damaged and
mistyped workbooks, odd folders, links out of the landing zone, …) and is built through
the command line, as an operator would. Each test asserts the exact outcome (rejected,
quarantined, ignored with a reason, one-line error + exit code), that nothing already
loaded is lost, and that no identity code reaches any output: stdout, stderr, staging,
the knowledge base, the report, the Dagster storage.
"""
from __future__ import annotations

import datetime as dt
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from pipelines import landing as landing_zone
from pipelines.data_lock import data_lock
from pipelines.kb_access import connect
from pseudonymize import generate_secret_file
from pseudonymize.redact import MARKER, redact
from schemas import load_contracts
from tests.conftest import SAMPLE_LANDING, rows
from tests.landing_writer import VALMENNUS_HEADER, Landing, hetu
from tests.privacy import scan
from tyokyky.cli import main

ROOT = Path(__file__).parent.parent
A, B, D = hetu(1, 2, 1980, 123), hetu(2, 3, 1975, 456), hetu(3, 4, 2001, 78)
IN_NAME = hetu(4, 5, 1990, 234, "Y")       # a 2023 century sign, in a file name
IN_FOLDER = hetu(5, 6, 1985, 345, "V")     # in a folder name
IN_SHEET = hetu(6, 7, 2005, 456, "E")      # in a sheet name
IN_TEXT = hetu(7, 8, 1970, 567)            # typed into TE's KUNTANIMI
IN_CELL = hetu(8, 9, 1960, 678, "W")       # in a number- or date-typed spreadsheet cell
INVALID = "311399-999X"                    # not a valid code, still one to hide
CODES = {A, B, D, IN_NAME, IN_FOLDER, IN_SHEET, IN_TEXT, IN_CELL, INVALID}
TTK = [A, "91", "TE", "1.2.2021", "4.3.2021", "", "", "LAAKARI"]


def cli(*args, env=None, timeout=600):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TYOKYKY_", "DAGSTER_HOME"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "tyokyky.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=timeout)


def one_line(r, *expected: str, code: int | None = None) -> str:
    """The command failed with exactly one line on stderr, naming what is expected."""
    assert r.returncode != 0 and (code is None or r.returncode == code), (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    for text in expected:
        assert text in r.stderr, r.stderr
    assert not scan_text(r.stderr)
    return r.stderr


def scan_text(text: str) -> list[str]:
    return [c for c in CODES if c in text.upper()]


def workbook(land: Landing, period: str, rows: list[list], patch: dict[str, str] | None = None, **kw) -> Path:
    """A valmennus workbook written by openpyxl, its sheet XML then edited as a damaged or
    hand-edited file would be."""
    path = land.valmennus(period, rows, **kw)
    source = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in source.namelist():
            data = source.read(name)
            if name == "xl/worksheets/sheet1.xml":
                text = data.decode()
                for old, new in (patch or {}).items():
                    assert old in text, old
                    text = text.replace(old, new)
                data = text.encode()
            z.writestr(name, data)
    path.write_bytes(out.getvalue())
    return path


def coaching(code: str, start="1.3.2021", hours=30) -> list:
    return [code, start, None, "15.3.2021", "Avoin", hours, "G"]


def hostile_landing(root: Path) -> Landing:
    """Good deliveries beside every fault this suite injects."""
    land = Landing(root / "landing")
    # good deliveries that must load whatever else is wrong
    land.csv("ttk", "2021-03", [TTK, [B] + TTK[1:]])
    land.csv("suostumukset", "2021-03", [[A, "1.1.2021", ""], [B, "1.1.2021", ""]])
    land.kela("2021-03", [(A, "202103", "TMTU", 20, 70000, 35000)])
    # free text with an identity code, and a code in an invalid row
    land.csv("te", "2021-03", [[A, "186", "01", "2021-03-01", "", "Järvenpää"],
                               [B, "186", "01", "2021-03-01", "", f"Kerava {IN_TEXT}"],
                               [INVALID, "186", "01", "2021-03-01", "", "Kerava"]])
    # a quoted line break: the line numbers after it must stay right
    land.raw("kunta", "2021-03", (f'hetu,kunta,palvelu,alkupvm,loppupvm\n{A},186,"TYOKOKEILU\nX",2021-03-01,\n'
                                  f'{B},186,TYOKOKEILU,2021-03-01,2021-02-01\n{D},186,KOULUTUS,2021-03-01,\n').encode())
    # JSON lines with a BOM; one line nested a thousand levels deep
    ok = {"hetu": A, "kunta": "106", "alku": "2021-03-01", "loppu": None, "monialainen_suunnitelma": True}
    land.raw("typ", "2021-03", b"\xef\xbb\xbf" + "\n".join(
        [json.dumps(ok), json.dumps({**ok, "hetu": B}), '{"hetu": ' + "[" * 1000 + "]" * 1000 + "}",
         '{"hetu": "%s", "hetu": "%s", "alku": "2021-03-01"}' % (A, B)]).encode() + b"\n")
    # a row of delimiters only
    land.raw("ttk", "2021-04", ("\ufeff" + "henkilotunnus;kuntakoodi;lahettava_taho;lahete_pvm;alkupvm;loppupvm;"
                                "paattymissyy;vastuutyontekija\n" + ";".join([D] + TTK[1:]) + "\n;;;;;;;\n\n").encode())
    # an identity code in a file name (which then does not match the agreed name)
    land.csv("ttk", "2021-05", [TTK], name=f"ttk_jaksot_202105_{IN_NAME}.csv")
    # a period folder with a line break in its name
    land.csv("ttk", "2021-06", [TTK])
    (root / "landing/ttk/2021-06").rename(root / "landing/ttk/2021-06\n")
    # a period folder that is a link out of the landing zone
    outside = Landing(root / "outside")
    outside.csv("ttk", "2021-07", [[D] + TTK[1:]])
    (root / "landing/ttk/2021-07").symlink_to(root / "outside/ttk/2021-07", target_is_directory=True)
    # a folder named with a code, stray files at the top and at a partner's top
    land.csv("mittarit", "2021-03", [[A, "3.3.2021", "TKI", "ALKU", "7"]])
    (root / "landing/mittarit" / IN_FOLDER).mkdir()
    (root / "landing/README.txt").write_text("deliveries go here\n")
    (root / "landing" / f"{IN_NAME}.csv").write_text("x\n")
    (root / "landing/te/muistiinpanot.txt").write_text("x\n")
    (root / "landing/kela/2021-03/.DS_Store").write_bytes(b"\0")
    # workbooks: a code in a number cell and in a date cell, a code as a sheet name,
    # duplicate headers, formulas, a truncated file, a bad shared-string index
    workbook(land, "2021-03", [coaching(A, hours=777777), coaching(B, "2.3.2021")],
             patch={"<v>777777</v>": f"<v>{IN_CELL}</v>"})
    workbook(land, "2021-04", [[A, dt.date(2021, 4, 1), None, None, None, None, None]],
             patch={'s="1" t="n"><v>44287</v>': f't="d"><v>{IN_CELL}</v>'})
    workbook(land, "2021-05", [coaching(A)], header=VALMENNUS_HEADER[:6] + ["Valmennus alkoi"])
    workbook(land, "2021-06", [coaching(A, hours="=10*3"), coaching(B, hours="=20+5")],
             patch={"<f>10*3</f><v />": "<f>10*3</f><v>30</v>"})
    workbook(land, "2021-07", [coaching(A)], sheet=IN_SHEET)
    full = workbook(land, "2021-08", [coaching(A), coaching(B)])
    full.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    workbook(land, "2021-09", [coaching(A)], patch={'t="inlineStr"><is><t>Avoin</t></is>': 't="s"><v>999</v>'})
    return land


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    land = hostile_landing(root)
    key = generate_secret_file(root / "keys/test.key")
    data = root / "data"
    r = cli("run", "--landing", str(land.root), "--data", str(data), "--key-file", str(key))
    return {"root": root, "landing": land, "data": data, "key": key, "run": r}


def kb_rows(data: Path, sql: str) -> list[dict]:
    with connect(data / "tyokyky.duckdb") as con:
        return rows(con, sql)


def delivery(data: Path, partner: str, period: str) -> dict:
    found = kb_rows(data, f"SELECT * FROM ind.data_quality WHERE partner = '{partner}' AND period = '{period}'")
    assert len(found) == 1, (partner, period)
    return found[0]


def quarantine(data: Path, partner: str, period: str) -> list[tuple]:
    return [(q["line"], q["reason"]) for q in kb_rows(
        data, f"SELECT line, reason FROM kb.quarantine WHERE partner = '{partner}' AND period = '{period}' ORDER BY line")]


# ------------------------------------------------------------------ the build goes on
def test_build_succeeds_and_reports_every_fault(hostile):
    r = hostile["run"]
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert "knowledge base:" in r.stdout
    for loaded in [("ttk", "2021-03"), ("suostumukset", "2021-03"), ("kela", "2021-03"), ("te", "2021-03"),
                   ("kunta", "2021-03"), ("typ", "2021-03"), ("ttk", "2021-04"), ("mittarit", "2021-03"),
                   ("valmennus", "2021-06")]:
        d = delivery(hostile["data"], *loaded)
        assert d["status"] == "loaded" and d["rows_read"] == d["rows_loaded"] + d["rows_quarantined"], d
    # A and B have consent; D (a programme client without consent) is held back
    assert kb_rows(hostile["data"], "SELECT count(*) AS n FROM kb.clients")[0]["n"] == 2


def test_report_appendix_counts_redactions_and_ignored_files(hostile):
    from pypdf import PdfReader

    report = next((hostile["data"] / "reports").glob("*.pdf"))
    text = " ".join(" ".join((page.extract_text() or "").split()) for page in PdfReader(report).pages)
    # two codes redacted (a file name, a KUNTANIMI): a count below five is shown as <5
    assert "Tiedostonimistä ja vapaatekstikentistä poistettuja henkilötunnuksia <5" in text
    # six ignored entries, published rounded to the nearest 5
    assert "toimitusalueelta ohitettuja muita tiedostoja ja kansioita 5." in text


def test_no_identity_code_in_any_output(hostile):
    found = scan([hostile["data"]], CODES)
    assert not found, found
    assert not scan_text(hostile["run"].stdout) and not scan_text(hostile["run"].stderr)
    assert (hostile["data"] / ".dagster").is_dir()  # the Dagster storage was part of the scan


# ------------------------------------------------------------------ 1. names and free text
def test_code_in_file_name_is_redacted_and_counted(hostile):
    d = delivery(hostile["data"], "ttk", "2021-05")
    assert d["status"] == "rejected" and d["file"] == f"ttk_jaksot_202105_{MARKER}.csv"
    assert d["reason"] == f"file name 'ttk_jaksot_202105_{MARKER}.csv' does not match ttk's 'ttk_jaksot_{{period}}.csv'"
    assert d["codes_redacted_in_names"] == 1 and d["codes_redacted_in_values"] == 0
    assert f"rejected delivery: ttk 2021-05: file name 'ttk_jaksot_202105_{MARKER}.csv'" in hostile["run"].stdout


def test_code_in_free_text_is_redacted_and_counted(hostile):
    d = delivery(hostile["data"], "te", "2021-03")
    assert (d["rows_read"], d["rows_loaded"], d["rows_quarantined"]) == (3, 2, 1)
    assert d["codes_redacted_in_values"] == 1
    names = pq.read_table(hostile["data"] / "staging/te/2021-03/rows.parquet").column("municipality_name").to_pylist()
    assert sorted(names) == ["Järvenpää", f"Kerava {MARKER}"]
    assert quarantine(hostile["data"], "te", "2021-03") == [(4, "HETU: impossible date")]


def test_code_in_sheet_name_is_redacted(hostile):
    d = delivery(hostile["data"], "valmennus", "2021-07")
    assert d["status"] == "rejected" and d["reason"] == f"the workbook has no sheet 'Asiakkaat' (it has: {MARKER})"


@pytest.mark.parametrize("period, cell", [("2021-03", "F2"), ("2021-04", "B2")])
def test_code_in_typed_cell_rejects_naming_the_cell_never_the_value(hostile, period, cell):
    d = delivery(hostile["data"], "valmennus", period)
    assert d["status"] == "rejected" and d["rows_loaded"] == 0
    assert d["reason"].startswith(f"sheet 'Asiakkaat' cannot be read at cell {cell} (ValueError)")


def test_folder_named_with_code_is_ignored_redacted(hostile):
    ignored = kb_rows(hostile["data"], "SELECT * FROM kb.landing_ignored ORDER BY path")
    assert {"path": f"mittarit/{MARKER}", "reason": "not a YYYY-MM delivery folder; ignored",
            "codes_redacted": 1} in ignored
    assert {"path": f"{MARKER}.csv", "codes_redacted": 1, "reason": "a file at the landing zone's top level "
            "(deliveries go into <partner>/<YYYY-MM>/); ignored"} in ignored


def test_redaction_catches_every_century_sign_and_invalid_codes():
    for sign in "+-YXWVUABCDEF":
        code = hetu(1, 2, 1980 if sign in "-YXWVU" else (1880 if sign == "+" else 2010), 123, sign)
        assert redact(f"x{code}y") == f"x{MARKER}y" and redact(f"x{code.lower()}y") == f"x{MARKER}y"
    assert redact(INVALID) == MARKER and redact("kela_etuudet_202103.txt") == "kela_etuudet_202103.txt"


# ------------------------------------------------------------------ 2. faults isolated to their delivery
@pytest.mark.parametrize("period, reason", [
    ("2021-08", "the spreadsheet cannot be opened as an XLSX workbook"),
    ("2021-09", "sheet 'Asiakkaat' cannot be read at cell E2 (IndexError)"),
])
def test_damaged_workbook_is_rejected_alone(hostile, period, reason):
    d = delivery(hostile["data"], "valmennus", period)
    assert d["status"] == "rejected" and d["reason"].startswith(reason)


def test_deeply_nested_json_and_duplicate_keys_are_row_errors(hostile):
    d = delivery(hostile["data"], "typ", "2021-03")
    assert (d["rows_read"], d["rows_loaded"], d["rows_quarantined"]) == (4, 2, 2)
    assert quarantine(hostile["data"], "typ", "2021-03") == [
        (3, "not valid JSON (nested too deeply)"), (4, "an object names the same key twice")]


TTK_HEADER = "\ufeffhenkilotunnus;kuntakoodi;lahettava_taho;lahete_pvm;alkupvm;loppupvm;paattymissyy;vastuutyontekija\n"
KUNTA_HEADER = "hetu,kunta,palvelu,alkupvm,loppupvm\n"
KUNTA_CODES = "KUNTOUTTAVA_TYOTOIMINTA, TYOKOKEILU, PALKKATUKI, TYOHONVALMENNUS, KOULUTUS, SOSIAALINEN_KUNTOUTUS"


@pytest.mark.parametrize("partner, content, outcome", [
    ("kunta", f'{KUNTA_HEADER}{A},186,"TYOKOKEILU,2021-03-01,\n{B},186,KOULUTUS,2021-03-01,\n'.encode(),
     [(2, "expected 5 fields, found 3 (a quoted value runs over lines 2–3: check its quotes)")]),
    ("kunta", f'{KUNTA_HEADER}{A},186,TYO"KOKEILU,2021-03-01,\n'.encode(), [(2, f"palvelu: not one of {KUNTA_CODES}")]),
    ("ttk", b"\xef\xbb\xbf", "the file is empty"),
    ("ttk", b"\xef\xbb\xbf \r\n\t\n", "the file is empty"),
    ("kela", b" \r\n\r\n", "the file is empty"),
    ("ttk", (TTK_HEADER + ";".join(TTK) + "\x00\n").encode(),
     [(2, "vastuutyontekija: not one of SOSIAALIOHJAAJA, TERVEYDENHOITAJA, TOIMINTATERAPEUTTI, FYSIOTERAPEUTTI, LAAKARI")]),
    ("mittarit", f"\ufeffhenkilotunnus;mittauspvm;mittari;vaihe;arvo\n{A};3.3.2021;PHQ9;ALKU;{'9' * 30}\n".encode(),
     [(2, "arvo: outside the PHQ9 range 0–27 (whole numbers)")]),
    ("kela", f"ALKU20210320210328\r\n{A}202103TMTU020\x1f000070000000035000\r\nLOPPU000000001\r\n".encode("latin-1"),
     "the file holds control characters that are not allowed in records"),
    ("typ", b'{"hetu": "\xff"}\n', "the file cannot be decoded as UTF-8 (first bad byte on line 1): export it again in UTF-8"),
    ("typ", b"\n\n   \n", "the file holds no data records (empty or header only)"),
])
def test_each_readers_own_failure_modes(tmp_path, key, partner, content, outcome):
    from pipelines import staging

    land = Landing(tmp_path / "landing")
    land.raw(partner, "2021-03", content)
    contract = load_contracts()[partner]
    attempt = staging.stage_delivery(tmp_path / "staging", landing_zone.scan_partner(land.root, contract, "2021-03"),
                                     contract, key)
    if isinstance(outcome, str):
        assert (attempt.status, attempt.reason, attempt.rows_loaded) == ("rejected", outcome, 0)
    else:
        q = pq.read_table(tmp_path / "staging" / partner / "2021-03/quarantine.parquet").to_pylist()
        assert attempt.status == "loaded" and [(r["line"], r["reason"]) for r in q] == outcome
        assert attempt.rows_read == attempt.rows_loaded + attempt.rows_quarantined
    assert not scan([tmp_path / "staging"], CODES)


# ------------------------------------------------------------------ 6. no silent decision
def test_duplicate_xlsx_header_rejects(hostile):
    d = delivery(hostile["data"], "valmennus", "2021-05")
    assert d["status"] == "rejected"
    assert d["reason"] == "the header names column(s) 'Valmennus alkoi' more than once: which one holds the data cannot be known"


def test_formula_cells_use_the_saved_value_or_are_row_errors(hostile):
    d = delivery(hostile["data"], "valmennus", "2021-06")
    assert (d["rows_read"], d["rows_loaded"], d["rows_quarantined"]) == (2, 1, 1)
    assert quarantine(hostile["data"], "valmennus", "2021-06") == [
        (3, "Työaika h/vko: a formula saved without its computed value (open and save the workbook in Excel)")]
    hours = pq.read_table(hostile["data"] / "staging/valmennus/2021-06/rows.parquet").column("hours_per_week")
    assert hours.to_pylist() == [30]


def test_row_of_delimiters_only_is_quarantined(hostile):
    d = delivery(hostile["data"], "ttk", "2021-04")
    assert (d["rows_read"], d["rows_loaded"], d["rows_quarantined"]) == (2, 1, 1)
    assert quarantine(hostile["data"], "ttk", "2021-04") == [(3, "every field is empty (a line of delimiters only)")]


def test_quarantine_line_after_quoted_line_break(hostile):
    d = delivery(hostile["data"], "kunta", "2021-03")
    assert (d["rows_read"], d["rows_loaded"], d["rows_quarantined"]) == (3, 1, 2)
    assert quarantine(hostile["data"], "kunta", "2021-03") == [
        (2, "palvelu: not one of KUNTOUTTAVA_TYOTOIMINTA, TYOKOKEILU, PALKKATUKI, TYOHONVALMENNUS, KOULUTUS, "
            "SOSIAALINEN_KUNTOUTUS"),
        (4, "loppupvm is before alkupvm")]


def test_jsonl_with_bom_keeps_its_first_record(hostile):
    staged = pq.read_table(hostile["data"] / "staging/typ/2021-03/rows.parquet").to_pylist()
    assert [r["source_line"] for r in staged] == [1, 2]


def test_stray_files_and_odd_folders_are_listed_as_ignored(hostile):
    ignored = {r["path"]: r["reason"] for r in kb_rows(hostile["data"], "SELECT * FROM kb.landing_ignored")}
    assert ignored["README.txt"].startswith("a file at the landing zone's top level")
    assert ignored["te/muistiinpanot.txt"].startswith("a file at the partner's top level")
    assert ignored["ttk/2021-06\\n"] == "not a YYYY-MM delivery folder; ignored"
    assert ignored["kela/2021-03/.DS_Store"] == "hidden file or folder in a delivery folder; ignored"
    assert "warning: ttk/2021-06\\n: not a YYYY-MM delivery folder; ignored" in hostile["run"].stdout
    assert "warning: README.txt: a file at the landing zone's top level" in hostile["run"].stdout


def test_period_folder_linked_out_of_the_landing_zone_is_rejected_unread(hostile):
    d = delivery(hostile["data"], "ttk", "2021-07")
    assert d["status"] == "rejected" and d["rows_in_place"] == 0
    assert d["reason"].startswith("the delivery folder is a link to outside the landing zone (not followed)")
    target = hostile["root"] / "outside/ttk/2021-07/ttk_jaksot_202107.csv"
    assert d["content_sha256"] != landing_zone.file_sha256(target)


def test_unreadable_file_is_named_and_rejected_alone(tmp_path, monkeypatch):
    land = Landing(tmp_path / "landing")
    land.csv("ttk", "2021-03", [TTK])
    land.csv("ttk", "2021-04", [TTK])
    real = landing_zone.file_sha256

    def failing(path):
        if path.name == "ttk_jaksot_202104.csv":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(landing_zone, "file_sha256", failing)
    deliveries, _ = landing_zone.scan(land.root, load_contracts())
    problems = {d.period: d.problem for d in deliveries}
    assert problems == {"2021-03": None, "2021-04": "file 'ttk_jaksot_202104.csv' cannot be read (Permission "
                                                    "denied): check its permissions"}


def test_withdrawn_delivery_folder_is_reported_and_its_rows_stay(tmp_path):
    land = Landing(tmp_path / "landing")
    land.csv("ttk", "2021-03", [TTK])
    land.csv("ttk", "2021-04", [[B] + TTK[1:4] + ["5.4.2021", "", "", "LAAKARI"]])
    land.csv("suostumukset", "2021-03", [[A, "1.1.2021", ""], [B, "1.1.2021", ""]])
    key = generate_secret_file(tmp_path / "k.key")
    args = ["run", "--landing", str(land.root), "--data", str(tmp_path / "data"), "--key-file", str(key)]
    assert cli(*args).returncode == 0
    before = kb_rows(tmp_path / "data", "SELECT count(*) AS n FROM kb.episodes")[0]["n"]
    shutil.rmtree(land.root / "ttk/2021-04")
    metas = list((tmp_path / "data/staging").glob("*/_superseded.json"))
    for meta in metas:  # as a crash while writing them would leave them: stale, not fatal
        meta.write_text('{"signat')
    assert metas
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert ("warning: ttk 2021-04: the delivery folder is no longer in the landing zone; its loaded rows stay "
            "in the knowledge base") in r.stdout
    d = delivery(tmp_path / "data", "ttk", "2021-04")
    assert d["in_landing_zone"] is False and d["status"] == "loaded" and d["rows_in_place"] == 1
    assert delivery(tmp_path / "data", "ttk", "2021-03")["in_landing_zone"] is True
    assert kb_rows(tmp_path / "data", "SELECT count(*) AS n FROM kb.episodes")[0]["n"] == before == 2


# ------------------------------------------------------------------ 5. query is read-only
@pytest.mark.parametrize("sql, expected", [
    ("SELECT * FROM read_csv('{key}')", "file system operations are disabled"),
    ("COPY (SELECT 1 AS pseudonym) TO '{rows}' (FORMAT parquet)", "file system operations are disabled"),
    ("EXPORT DATABASE '{out}'", "file system operations are disabled"),
    ("ATTACH '{out}.duckdb' AS x", "file system operations are disabled"),
    ("INSTALL httpfs", "disabled"),
    ("LOAD httpfs", "disabled"),
    ("SET enable_external_access = true", "the configuration has been locked"),
    ("SET lock_configuration = false", "the configuration has been locked"),
    ("DELETE FROM kb.clients", "read-only"),
])
def test_query_is_truly_read_only(hostile, tmp_path, capsys, sql, expected):
    rows_file = hostile["data"] / "staging/ttk/2021-03/rows.parquet"
    before = rows_file.read_bytes()
    text = sql.format(key=hostile["key"], rows=rows_file, out=tmp_path / "export")
    assert main(["query", "--data", str(hostile["data"]), text]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "query failed" in err and expected in err, err
    assert rows_file.read_bytes() == before and not list(tmp_path.iterdir())


def test_notebook_helper_is_locked_down(hostile):
    con = connect(hostile["data"] / "tyokyky.duckdb")
    assert con.sql("SELECT count(*) FROM kb.deliveries").fetchall()[0][0] > 0
    for sql in (f"SELECT * FROM read_text('{hostile['key']}')", "SET enable_external_access = true"):
        with pytest.raises(duckdb.Error):
            con.sql(sql)
    notebooks = [p.read_text() for p in (ROOT / "notebooks").glob("*.ipynb")]
    assert notebooks and all("from pipelines.kb_access import connect" in n and "duckdb.connect(" not in n
                             for n in notebooks)


# ------------------------------------------------------------------ 4. one line for every user error
def test_cli_misuse_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    one_line(cli("synth", "--out", str(tmp_path / "afile")), "is a file, not a folder", code=2)
    one_line(cli("synth", "--out", str(tmp_path / "x"), "--persons", "0"), "0 is not a positive number", code=2)
    one_line(cli("synth", "--out", str(tmp_path / "x"), "--persons", "-5"), "-5 is not a positive number", code=2)
    one_line(cli("synth", "--out", str(tmp_path / "x"), "--persons", "many"), "'many' is not a whole number", code=2)
    one_line(cli("query", "--max-rows", "-1", "SELECT 1"), "--max-rows: -1 is not a positive number", code=2)
    one_line(cli("frobnicate"), "invalid choice: 'frobnicate'", code=2)
    one_line(cli("run", "--no-such-flag"), "unrecognized arguments: --no-such-flag", code=2)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("content, message", [
    ("savings_scenario: [1,\n", "is not valid YAML of sections and values (line 2)"),
    ("nosuch: {a: 1}\n", "unknown section 'nosuch' (known: savings_scenario, suppression)"),
    ("suppression: {threshold: many}\n", "suppression.threshold must be a number of 0 or more"),
    ("suppression: {treshold: 3}\n", "suppression has no parameter 'treshold' (known: threshold, rounding_base, midpoint_rounding)"),
    (None, "cannot be read (No such file or directory)"),
])
def test_bad_parameters_file_is_one_line(tmp_path, content, message):
    key = generate_secret_file(tmp_path / "k.key")
    params = tmp_path / "parameters.yaml"
    if content is not None:
        params.write_text(content)
    (tmp_path / "landing").mkdir()
    r = cli("run", "--landing", str(tmp_path / "landing"), "--data", str(tmp_path / "data"),
            "--key-file", str(key), "--parameters", str(params))
    one_line(r, f"parameters file {params}", message, code=1)
    assert not (tmp_path / "data").exists()  # stopped before anything was written


def test_unusable_data_dir_dagster_home_and_key_are_one_line(tmp_path):
    key = generate_secret_file(tmp_path / "k.key")
    (tmp_path / "landing").mkdir()
    (tmp_path / "afile").write_text("x")
    base = ["run", "--landing", str(tmp_path / "landing"), "--key-file", str(key)]
    one_line(cli(*base, "--data", "/proc/tyokyky-data"), "while building into /proc/tyokyky-data", code=1)
    one_line(cli(*base, "--data", str(tmp_path / "afile" / "data")), "Not a directory", code=1)
    one_line(cli(*base, "--data", str(tmp_path / "d"), env={"DAGSTER_HOME": str(tmp_path / "afile" / "home")}),
             "preparing the Dagster instance", "(DAGSTER_HOME)", code=1)
    one_line(cli("run", "--landing", str(tmp_path / "landing"), "--data", str(tmp_path / "d"),
                 "--key-file", str(tmp_path)), "is not a file: pass the key file itself", code=1)


def test_full_disk_stops_with_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys):
    from pipelines import staging

    land = Landing(tmp_path / "landing")
    land.csv("ttk", "2021-03", [TTK])
    key = generate_secret_file(tmp_path / "k.key")
    args = ["run", "--landing", str(land.root), "--data", str(tmp_path / "data"), "--key-file", str(key)]

    def full(table, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(staging, "_write_parquet", full)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on the device" in err and "quarantine.parquet" in err, err
    assert not (tmp_path / "data/staging/ttk/2021-03").exists()  # not recorded as a rejected delivery
    monkeypatch.undo()
    assert main(args) == 0  # space freed: the same delivery loads
    assert delivery(tmp_path / "data", "ttk", "2021-03")["status"] == "loaded"


# ------------------------------------------------------------------ 3. one writer, crash recovery
def test_second_run_exits_naming_the_running_process(tmp_path):
    key = generate_secret_file(tmp_path / "k.key")
    (tmp_path / "landing").mkdir()
    with data_lock(tmp_path / "data", "tyokyky run"):
        r = cli("run", "--landing", str(tmp_path / "landing"), "--data", str(tmp_path / "data"), "--key-file", str(key))
    one_line(r, f"data directory {tmp_path / 'data'} is in use by tyokyky run (pid {os.getpid()}", code=1)


def test_lock_is_reentrant_in_process_and_exclusive_across(tmp_path):
    with data_lock(tmp_path, "outer"), data_lock(tmp_path, "inner"):
        probe = subprocess.run([sys.executable, "-c", (
            "import sys; from pipelines.data_lock import data_lock, DataDirBusy\n"
            "try:\n    data_lock(sys.argv[1], 'probe').__enter__()\nexcept DataDirBusy as e:\n"
            "    print(e); sys.exit(3)"), str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
        assert probe.returncode == 3 and f"(pid {os.getpid()}" in probe.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys; from pipelines.data_lock import data_lock\n"
                            "with data_lock(sys.argv[1], 'probe'): print('got it')", str(tmp_path)],
                           capture_output=True, text=True, cwd=ROOT)
    assert probe.stdout == "got it\n"  # released when the outer block ended


def _hold_lock_in_another_process(data: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pipelines.data_lock import data_lock\n"
        "with data_lock(sys.argv[1], 'tyokyky run'):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))"),
        str(data), str(seconds)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline() == "held\n"
    return holder


class _Instance:
    """What a Dagster step's context offers the step lock: the run's tags."""

    def __init__(self):
        self.tags = {}

    def get_run_by_id(self, run_id):
        return types.SimpleNamespace(tags=dict(self.tags))

    def add_run_tags(self, run_id, tags):
        self.tags.update(tags)


def test_a_daemon_launched_step_waits_for_the_running_process(tmp_path, monkeypatch):
    import pipelines.data_lock as dl

    context = types.SimpleNamespace(run_id="0123456789abcdef", instance=_Instance())
    holder = _hold_lock_in_another_process(tmp_path, 2)
    started = time.monotonic()
    with dl.step_lock(context, tmp_path):
        waited = time.monotonic() - started
    assert waited > 1 and holder.wait() == 0
    assert context.instance.tags == {dl.PROCESS_TAG: dl.process_token()}  # a later run can tell if it died
    monkeypatch.setattr(dl, "STEP_WAIT_SECONDS", 0.5)
    holder = _hold_lock_in_another_process(tmp_path, 30)
    try:
        with pytest.raises(dl.DataDirBusy, match=rf"is in use by tyokyky run \(pid {holder.pid}, since"):
            with dl.step_lock(context, tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()


def kill_9_when(args: list[str], ready) -> None:
    """Start ``tyokyky ARGS`` and kill it with SIGKILL as soon as ``ready()`` is true."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TYOKYKY_", "DAGSTER_HOME"))}
    victim = subprocess.Popen([sys.executable, "-m", "tyokyky.cli", *args], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ready() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ready(), "the moment to kill never came"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()


def test_kill_9_during_staging_then_the_next_run_completes(tmp_path, sample_build):
    landing_dir = tmp_path / "landing"
    shutil.copytree(SAMPLE_LANDING, landing_dir)
    key = generate_secret_file(tmp_path / "k.key")
    data = tmp_path / "data"
    args = ["run", "--landing", str(landing_dir), "--data", str(data), "--key-file", str(key)]
    kill_9_when(args, lambda: any((data / "staging").glob("*/*.new")))
    assert not (data / "tyokyky.duckdb").exists()
    r = cli(*args, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "warning: after an interrupted run: run " in r.stdout
    assert not list((data / "staging").glob("*/*.new")) and not list((data / "staging").glob("*/*.old"))
    quality = "SELECT partner, period, status, rows_read, rows_loaded, rows_quarantined FROM ind.data_quality ORDER BY ALL"
    assert kb_rows(data, quality) == kb_rows(sample_build["data"], quality)  # as if never interrupted


def test_kill_9_during_the_build_then_the_next_run_completes(tmp_path):
    landing_dir = tmp_path / "landing"
    shutil.copytree(SAMPLE_LANDING, landing_dir)
    key = generate_secret_file(tmp_path / "k.key")
    data = tmp_path / "data"
    args = ["run", "--landing", str(landing_dir), "--data", str(data), "--key-file", str(key)]
    assert cli(*args).returncode == 0
    kb_file = data / "tyokyky.duckdb"
    before = kb_rows(data, "SELECT count(*) AS n FROM kb.clients")[0]["n"]

    building = data / "tyokyky.duckdb.building"
    kill_9_when(args, building.exists)

    # the previous knowledge base stays readable, unchanged
    assert kb_rows(data, "SELECT count(*) AS n FROM kb.clients")[0]["n"] == before
    instance = DagsterInstance.from_config(str(data / ".dagster"))
    dead = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
    assert len(dead) == 1
    assert dead[0].run_id in instance.event_log_storage.get_concurrency_run_ids()  # the slot it held

    r = cli(*args, timeout=300)  # before: hung forever at full CPU
    assert r.returncode == 0, r.stderr
    assert f"warning: after an interrupted run: run {dead[0].run_id[:8]} of a process that is gone was marked failed" \
        in r.stdout
    assert "removed tyokyky.duckdb.building of an interrupted knowledge-base build" in r.stdout
    instance = DagsterInstance.from_config(str(data / ".dagster"))
    assert instance.get_run_by_id(dead[0].run_id).status == DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_run_ids()
    assert not building.exists() and kb_file.exists()
    assert kb_rows(data, "SELECT count(*) AS n FROM kb.clients")[0]["n"] == before


def test_staging_recovers_from_a_swap_cut_in_half(tmp_path, key):
    from pipelines import staging

    land = Landing(tmp_path / "landing")
    land.csv("ttk", "2021-03", [TTK])
    contract = load_contracts()["ttk"]
    staged = tmp_path / "staging"
    staging.stage_delivery(staged, landing_zone.scan_partner(land.root, contract, "2021-03"), contract, key)
    target = staged / "ttk/2021-03"
    # killed between "target -> .old" and ".new -> target": the complete new version wins
    shutil.copytree(target, target.with_name("2021-03.new"))
    os.replace(target, target.with_name("2021-03.old"))
    assert staging.recover(staged) == ["completed the interrupted staging of ttk 2021-03"]
    assert (target / "rows.parquet").exists() and not target.with_name("2021-03.old").exists()
    # killed while writing a new version: the version in place stays, the half-written one goes
    half = target.with_name("2021-03.new")
    half.mkdir()
    (half / "rows.parquet").write_bytes(b"PAR1")
    assert staging.recover(staged) == ["removed the unfinished staging of ttk 2021-03"]
    assert not half.exists() and pq.read_table(target / "rows.parquet").num_rows == 1


def test_landing_scan_lists_in_folder_order_though_folders_are_inspected_side_by_side(tmp_path):
    """Period folders are inspected (their files hashed) in a thread pool; what the scan lists
    keeps the order of a walk through the sorted folders all the same."""
    land = Landing(tmp_path / "landing")
    for period in ("2021-01", "2021-02", "2021-03"):
        land.csv("ttk", period, [TTK])
        land.csv("kunta", period, [[A, "186", "TYOKOKEILU", "2021-01-04", ""]])
    (land.root / "README.txt").write_text("x")
    (land.root / "kunta" / "notes.txt").write_text("x")
    (land.root / "kunta" / "2021-02" / ".hidden").write_text("x")
    (land.root / "ttk" / "old").mkdir()
    (land.root / "ttk" / "2021-03" / "extra.csv").write_text("x")
    deliveries, ignored = landing_zone.scan(land.root, load_contracts())
    assert [(d.partner, d.period) for d in deliveries] == [("kunta", p) for p in ("2021-01", "2021-02", "2021-03")] \
        + [("ttk", p) for p in ("2021-01", "2021-02", "2021-03")]
    assert [i.path for i in ignored] == ["README.txt", "kunta/2021-02/.hidden", "kunta/notes.txt", "ttk/old"]
    assert deliveries[-1].problem.startswith("the folder holds 2 files")


def test_a_link_that_loops_is_not_followed_and_its_name_goes_nowhere(tmp_path):
    """Resolving a looping link raises with its full path (a partner's name, here a code): the
    scan does not follow it, rejects the delivery, and names it redacted."""
    land = Landing(tmp_path / "landing")
    land.csv("ttk", "2021-03", [TTK])
    loop = land.root / "kunta" / "2021-03" / f"loop_{A}.csv"
    loop.parent.mkdir(parents=True)
    loop.symlink_to(loop)
    (land.root / f"zz_{A}").symlink_to(land.root / f"zz_{A}")
    deliveries, ignored = landing_zone.scan(land.root, load_contracts())
    problems = {(d.partner, d.period): d.problem for d in deliveries}
    assert problems[("ttk", "2021-03")] is None
    assert "link to outside the landing zone" in problems[("kunta", "2021-03")]
    shown = [d.problem or "" for d in deliveries] + [f"{i.path} {i.reason}" for i in ignored]
    assert not any(A in text for text in shown) and [i.codes_redacted for i in ignored] == [1]
