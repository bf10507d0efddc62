"""Partner-side pseudonymisation: partner keys, sealed exports, manifests the pipeline verifies,
and a knowledge base from pre-pseudonymised deliveries equal to one from raw deliveries."""
import dataclasses
import datetime as dt
import json
import shutil
import stat

import pyarrow as pa
import pytest

from pipelines import landing as landing_zone
from pipelines import staging
from pipelines.partner_export import pseudonymise_export
from pipelines.sealed_intake import read_any
from pseudonymize import generate_secret_file, load_key_file
from pseudonymize.columns import pseudonymize_column
from pseudonymize.redact import contains_code
from pseudonymize.sealed import STAND_INS, Opener, PartnerKey, Sealer, SealError, seal_context
from schemas import load_contracts
from schemas.readers import DeliveryRejected
from tests.conftest import build
from tests.kb_compare import differences
from tests.landing_writer import Landing, hetu
from tests.privacy import landing_codes, scan
from tyokyky.cli import main

C = load_contracts()
A, B, F = hetu(1, 2, 1980, 123), hetu(2, 3, 1975, 222), hetu(5, 5, 1990, 555)
W = hetu(3, 4, 1965, 344, "X")  # a 2023 century sign


def messy(landing: Landing, period: str = "2019-12") -> None:
    """One delivery per format with what a reader turns into row errors, invalid codes of every
    kind, sloppy codes, a code in free text, quoted and multi-line values, typed and text cells."""
    landing.csv("te", period, [
        [A, "186", "01", "2019-12-01", "", "Järvenpää"],
        [" " + B.lower() + " ", "245", "01", "2019-12-02", "", "Kerava"],
        [W, "245", "01", "2019-12-03", "", f"asiakas {F} Kerava"],   # a code in free text: redacted
        ["010101", "x"],                                               # too few fields
        ["", "", "", "", "", ""],                                      # delimiters only
        [],                                                            # a blank line: no record
        [A[:10] + ("0" if A[10] != "0" else "1"), "186", "01", "2019-12-04", "", ""],  # bad check character
        [A[:6] + "Q" + A[7:], "186", "01", "2019-12-05", "", ""],      # unknown century sign
        ["320180-1230", "186", "01", "2019-12-06", "", ""],            # impossible date
        [A[:7] + "001" + A[10], "186", "01", "2019-12-07", "", ""],    # reserved individual number
        ["12345", "186", "01", "2019-12-08", "", ""],                  # bad length
        ["", "186", "01", "2019-12-09", "", ""],                       # missing code
        [B, "186", "99", "2019-12-10", "", ""],                        # a bad status code
    ])
    landing.raw("kunta", period, (
        "hetu,kunta,palvelu,alkupvm,loppupvm\n"
        f'"{A}","186","KOULUTUS","2019-12-01",""\n'
        f'{B},245,"KOU\nLUTUS",2019-12-02,\n'                           # a value over two lines
        f'"{W}",245,TYOKOKEILU,2019-12-03\n'                            # a field short
        f'"{F}","858","PALKKATUKI","2019-12-04","2019-12-31"\n').encode())
    landing.typ(period, [
        {"hetu": A, "kunta": 186, "alku": "2019-12-01", "loppu": None, "monialainen_suunnitelma": True},
        "{not json", "[1, 2]", '{"hetu": "x", "hetu": "y"}', "",
        {"hetu": B.lower(), "kunta": {"nested": 1}, "alku": "2019-12-02"},
        {"hetu": "", "kunta": "106", "alku": "2019-12-03"},
    ])
    landing.kela(period, [
        (A, "201912", "TMTU", 20, 50000, 25000),
        (" " * 11, "201912", "TMTU", 20, 50000, 25000),                 # missing code
        (B[:10] + ("0" if B[10] != "0" else "1"), "201912", "PPR", 10, 100, 0),  # bad check character
        (W + "X", "201912", "TMTU", 20, 50000, 25000),                  # a record one too long
        (F, "201911", "SPR", 3, 3000, 4000),                            # municipal share > paid
    ])
    landing.valmennus(period, [
        [A, dt.datetime(2019, 12, 1), None, dt.datetime(2019, 12, 20), "Avoin", 37.5, "G"],
        [],                                                             # an empty row
        [B.lower(), "2.12.2019", None, None, None, "20,5", None],
        [W, "=TODAY()", None, None, None, None, None],                 # a formula saved without a value
        ["010101-0101", "3.12.2019", None, None, None, None, None],     # invalid code
    ])
    landing.csv("mittarit", period, [[A, "1.12.2019", "WHODAS12", "ALKU", "37,5"],
                                     [B, "2.12.2019", "TKI", "ALKU", "11"]])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A synthetic landing zone plus messy deliveries, pseudonymised partner by partner, and both
    variants built through Dagster under one deployment key."""
    from pipelines.synth import write_landing_zone

    root = tmp_path_factory.mktemp("sealed")
    key_file = generate_secret_file(root / "keys" / "deployment.key")
    write_landing_zone(root / "raw", persons=150, seed=11)
    messy(Landing(root / "raw"))
    for partner in C:
        assert main(["partner-key", "--partner", partner, "--out", str(root / "partners" / f"{partner}.key"),
                     "--key-file", str(key_file)]) == 0
        assert main(["pseudonymise-export", "--partner", partner, "--partner-key",
                     str(root / "partners" / f"{partner}.key"), "--in", str(root / "raw" / partner),
                     "--out", str(root / "sealed" / partner)]) == 0
    raw = build(root / "raw", root / "data_raw", key_file)
    sealed = build(root / "sealed", root / "data_sealed", key_file)
    return {"root": root, "key_file": key_file, "raw": raw, "sealed": sealed}


def test_raw_and_pseudonymised_deliveries_build_the_same_knowledge_base(pair):
    root = pair["root"]
    # the delivered bytes differ by design (tokens instead of codes): only their hashes may differ
    hashes = {("kb", "deliveries"): {"content_sha256"}, ("ind", "data_quality"): {"content_sha256"}}
    assert differences(root / "data_raw" / "tyokyky.duckdb", root / "data_sealed" / "tyokyky.duckdb", hashes) == {}
    assert pair["raw"].rejected == pair["sealed"].rejected == []


def test_the_comparison_sees_the_messy_rows(pair):
    """The equality above covers row errors, invalid codes of every reason and redactions."""
    import duckdb

    con = duckdb.connect(str(pair["root"] / "data_sealed" / "tyokyky.duckdb"), read_only=True)
    reasons = dict(con.sql("SELECT reason, count(*) FROM kb.quarantine WHERE period = '2019-12' GROUP BY ALL")
                   .fetchall())
    redacted = con.sql("SELECT sum(codes_redacted_in_values) FROM kb.deliveries").fetchall()[0][0]
    con.close()
    for reason in ("bad check character", "unknown century sign", "impossible date", "reserved individual number",
                   "bad length", "missing identity code", "expected 6 fields, found 2",
                   "every field is empty (a line of delimiters only)", "not valid JSON", "not a JSON object",
                   "an object names the same key twice", "record is 45 characters long, expected 44"):
        assert any(r.endswith(reason) for r in reasons), reason
    assert any("formula saved without its computed value" in r for r in reasons)
    assert redacted >= 1


def test_no_identity_code_leaves_the_partner_or_enters_the_data(pair):
    root = pair["root"]
    codes = landing_codes(root / "raw")
    assert {A, B.upper(), W, F} <= codes
    assert scan([root / "sealed"], codes) == []
    assert scan([root / "data_sealed"], codes) == []


def test_manifest_records_key_counts_and_hash(pair):
    manifest = json.loads((pair["root"] / "sealed" / "te" / "2019-12" / "manifest.json").read_text())
    key = load_key_file(pair["key_file"])
    assert manifest["key_fingerprint"] == key.fingerprint
    assert manifest["partner_key_fingerprint"] == PartnerKey.issue(key, "te").fingerprint
    assert manifest["records"] == 12 and manifest["rows"] == 10          # 12 data lines, 2 unreadable
    assert manifest["row_errors"] == [[5, "expected 6 fields, found 2"],
                                      [6, "every field is empty (a line of delimiters only)"]]
    assert manifest["invalid_codes"] == {"bad check character": 1, "bad length": 1, "impossible date": 1,
                                         "reserved individual number": 1, "unknown century sign": 1}
    assert manifest["codes_redacted_in_values"] == 1
    assert len(manifest["sha256"]) == 64 and len(manifest["contract_version"]) == 64


def test_partner_key_is_public_material_only(tmp_path, key_file, capsys):
    out = tmp_path / "ttk.key"
    assert main(["partner-key", "--partner", "ttk", "--out", str(out), "--key-file", str(key_file)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    issued = json.loads(out.read_text())
    assert set(issued) == {"format", "partner", "public_key", "public_key_fingerprint", "key_fingerprint", "issued"}
    assert key_file.read_text().strip() not in out.read_text()
    assert PartnerKey.load(out, "ttk").public_raw != PartnerKey.issue(load_key_file(key_file), "kela").public_raw
    capsys.readouterr()
    assert main(["partner-key", "--partner", "ttk", "--out", str(out), "--key-file", str(key_file)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["partner-key", "--partner", "nobody", "--out", str(tmp_path / "x"), "--key-file", str(key_file)]) == 2
    err = capsys.readouterr().err
    assert "unknown partner 'nobody'" in err and len(err.strip().splitlines()) == 1
    assert main(["pseudonymise-export", "--partner", "kela", "--partner-key", str(out), "--in", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "issued to partner 'ttk', not 'kela'" in capsys.readouterr().err
    assert main(["pseudonymise-export", "--partner", "ttk", "--partner-key", str(out), "--in", str(tmp_path / "no"),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder: pass the export folder" in err and len(err.strip().splitlines()) == 1
    assert main(["pseudonymise-export", "--partner", "ttk", "--partner-key", str(out), "--in", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "lies inside --in" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["pseudonymise-export", "--partner", "ttk", "--partner-key", str(out), "--in", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "holds no <YYYY-MM> delivery folder" in capsys.readouterr().err


def test_a_token_opens_only_for_its_partner_file_and_deployment(key, tmp_path):
    other = load_key_file(generate_secret_file(tmp_path / "other.key"))
    context = seal_context("ttk", "2021-03", "ttk_jaksot_202103.csv")
    sealer = Sealer(PartnerKey.issue(key, "ttk"), context)
    tokens, invalid = sealer.seal_column(pa.array([A, " " + A.lower(), None, "x"]))
    assert invalid == {"bad length": 1}
    assert tokens[0] == tokens[1] and not contains_code(tokens[0].as_py())  # one code, one token in a file
    lines = pa.array([2, 3, 4, 5])
    opened, _ = Opener(key, "ttk", sealer.ephemeral_public, context).open_column(tokens, lines)
    assert opened.to_pylist() == [A, A, None, STAND_INS["bad length"]]
    blank, _ = Opener(key, "ttk", sealer.ephemeral_public, context).open_column(pa.array(["  "]), pa.array([2]))
    assert blank.to_pylist() == [None]  # a blank cell is a missing code, as in a raw file
    for opener in (Opener(key, "kela", sealer.ephemeral_public, context),                    # another partner
                   Opener(key, "ttk", sealer.ephemeral_public, seal_context("ttk", "2021-04", "x")),  # another file
                   Opener(other, "ttk", sealer.ephemeral_public, context)):                   # another deployment
        with pytest.raises(SealError, match="on line 2 cannot be opened"):
            opener.open_column(tokens, lines)


def test_stand_ins_of_invalid_codes_keep_their_reasons(key):
    errors = pseudonymize_column(pa.array(list(STAND_INS.values())), key).column("id_error").to_pylist()
    assert errors == list(STAND_INS)
    assert not any(contains_code(s) for s in STAND_INS.values())


# ---------------------------------------------------------------- manifest verification
@pytest.fixture
def sealed_te(tmp_path, key):
    """One pseudonymised te delivery in a landing zone, and a function staging it."""
    raw, landing = Landing(tmp_path / "raw"), tmp_path / "landing"
    raw.csv("te", "2021-03", [[A, "186", "01", "2021-03-01", "", "Järvenpää"], ["12345", "186", "01", "2021-03-02",
                                                                                  "", ""]])
    result = pseudonymise_export(C["te"], PartnerKey.issue(key, "te"), tmp_path / "raw" / "te", landing / "te")
    assert result.written == ["2021-03"] and result.invalid_codes == 1
    folder = landing / "te" / "2021-03"

    def stage(with_key=key, contract=C["te"]):
        delivery = landing_zone.scan_partner(landing, contract, "2021-03")
        assert delivery.manifest is not None and delivery.problem is None
        return staging.stage_delivery(tmp_path / "staging", delivery, contract, with_key)

    return folder, stage


def _edit_manifest(folder, **changes):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_verified_delivery_loads(sealed_te):
    attempt = sealed_te[1]()
    assert (attempt.status, attempt.rows_read, attempt.rows_loaded, attempt.rows_quarantined) == ("loaded", 2, 1, 1)


@pytest.mark.parametrize("tamper, expected", [
    (lambda f, key: _edit_manifest(f, key_fingerprint="f" * 64),
     "pseudonymised under another key (fingerprint ffffffffffff, this deployment's is"),
    (lambda f, key: _edit_manifest(f, partner_key_fingerprint=PartnerKey.issue(key, "kela").fingerprint),
     "with a key file issued to another partner"),
    (lambda f, key: (f / "te_tilat_202103.csv").write_bytes((f / "te_tilat_202103.csv").read_bytes() + b"\n"),
     "does not match the SHA-256 in manifest.json"),
    (lambda f, key: _edit_manifest(f, rows=3, records=4), "manifest.json counts 4 records (3 rows, 0 unreadable)"),
    (lambda f, key: _edit_manifest(f, invalid_codes={}), "manifest.json counts invalid codes {} but the file holds"),
    (lambda f, key: _edit_manifest(f, contract_version="0" * 64), "under another version of schemas/te.yaml"),
    (lambda f, key: _edit_manifest(f, period="2021-04"), "manifest.json names another period"),
    (lambda f, key: _edit_manifest(f, rows="many"), "manifest.json: rows is not a count"),
    (lambda f, key: (f / "manifest.json").write_text("{"), "manifest.json cannot be read as JSON"),
])
def test_a_manifest_that_does_not_match_rejects_the_delivery_in_one_line(sealed_te, key, tamper, expected):
    folder, stage = sealed_te
    tamper(folder, key)
    attempt = stage()
    assert attempt.status == "rejected"
    assert expected in attempt.reason and "\n" not in attempt.reason and "tyokyky" in attempt.reason


def test_a_delivery_sealed_for_another_deployment_is_rejected(sealed_te, tmp_path):
    other = load_key_file(generate_secret_file(tmp_path / "other.key"))
    attempt = sealed_te[1](with_key=other)
    assert attempt.status == "rejected" and "pseudonymised under another key" in attempt.reason


def test_a_token_changed_after_sealing_is_named_by_line(sealed_te, key):
    folder, stage = sealed_te
    path = folder / "te_tilat_202103.csv"
    lines = path.read_text(encoding="iso-8859-1").split("\n")
    token = lines[1].split(";")[0]
    lines[1] = lines[1].replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    path.write_bytes("\n".join(lines).encode("iso-8859-1"))
    _edit_manifest(folder, sha256=landing_zone.file_sha256(path))
    attempt = stage()
    assert attempt.status == "rejected" and "the identity token on line 2 cannot be opened" in attempt.reason


def test_the_contract_declares_which_variants_a_partner_may_send(sealed_te, tmp_path):
    folder, stage = sealed_te
    raw_only = dataclasses.replace(C["te"], accepts=("raw",))
    attempt = stage(contract=raw_only)
    assert attempt.status == "rejected" and "te delivers raw exports only" in attempt.reason
    plain = Landing(tmp_path / "plain")
    plain.csv("te", "2021-03", [[A, "186", "01", "2021-03-01", "", ""]])
    delivery = landing_zone.scan_partner(tmp_path / "plain", C["te"], "2021-03")
    with pytest.raises(DeliveryRejected, match="pseudonymised exports only"):
        read_any(dataclasses.replace(C["te"], accepts=("pseudonymised",)), delivery, None)


def test_run_rejects_a_delivery_made_under_another_key_with_one_line(tmp_path, key_file, capsys):
    raw = Landing(tmp_path / "raw")
    raw.csv("te", "2021-03", [[A, "186", "01", "2021-03-01", "", ""]])
    raw.csv("te", "2021-04", [[B, "186", "01", "2021-04-01", "", ""]])
    other = load_key_file(generate_secret_file(tmp_path / "other.key"))
    pseudonymise_export(C["te"], PartnerKey.issue(load_key_file(key_file), "te"), tmp_path / "raw" / "te",
                        tmp_path / "landing" / "te")
    shutil.rmtree(tmp_path / "landing" / "te" / "2021-04")
    pseudonymise_export(C["te"], PartnerKey.issue(other, "te"), tmp_path / "raw" / "te", tmp_path / "elsewhere")
    shutil.copytree(tmp_path / "elsewhere" / "2021-04", tmp_path / "landing" / "te" / "2021-04")
    capsys.readouterr()
    assert main(["run", "--landing", str(tmp_path / "landing"), "--data", str(tmp_path / "data"),
                 "--key-file", str(key_file)]) == 0
    rejected = [line for line in capsys.readouterr().out.splitlines() if line.startswith("rejected delivery")]
    assert len(rejected) == 1
    assert rejected[0].startswith("rejected delivery: te 2021-04: pseudonymised under another key")


def test_the_partner_is_told_which_deliveries_were_not_pseudonymised(tmp_path, key, capsys):
    raw = Landing(tmp_path / "raw")
    raw.kela("2021-03", [(A, "202103", "TMTU", 20, 100, 50)], trailer=False)
    raw.kela("2021-04", [(A, "202104", "TMTU", 20, 100, 50)])
    raw.raw("kela", "2021-05", b"x", name="wrong_name.txt")
    PartnerKey.issue(key, "kela").write(tmp_path / "kela.key")
    code = main(["pseudonymise-export", "--partner", "kela", "--partner-key", str(tmp_path / "kela.key"),
                 "--in", str(tmp_path / "raw" / "kela"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["2021-04"]
    problems = out.err.strip().splitlines()
    assert len(problems) == 2 and "2021-03" in problems[0] and "trailer" in problems[0]
    assert "2021-05" in problems[1] and "does not match" in problems[1]
    assert "pseudonymised 1 deliveries of kela" in out.out


def test_the_partner_command_needs_no_duckdb_or_dagster(tmp_path, key):
    """A partner runs it on its own machine: readers, pyarrow and cryptography only."""
    import subprocess
    import sys

    Landing(tmp_path / "raw").csv("ttk", "2021-03", [[A, "91", "TE", "1.2.2021", "1.3.2021", "", "", "LAAKARI"]])
    PartnerKey.issue(key, "ttk").write(tmp_path / "ttk.key")
    code = ("import sys; from tyokyky.cli import main; rc = main(['pseudonymise-export', '--partner', 'ttk', "
            f"'--partner-key', {str(tmp_path / 'ttk.key')!r}, '--in', {str(tmp_path / 'raw' / 'ttk')!r}, '--out', "
            f"{str(tmp_path / 'out')!r}]); print(rc, sorted(m for m in ('duckdb', 'dagster', 'great_expectations', "
            "'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"
    assert (tmp_path / "out" / "2021-03" / "manifest.json").exists()
