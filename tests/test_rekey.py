"""Key rotation: ``tyokyky rekey`` re-pseudonymises staging and the knowledge base, atomically,
leaves no old pseudonym in DATA/, and consent withdrawals keep working across it."""
import hashlib
import json
import os
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines import rekey, staging
from pipelines.partner_export import pseudonymise_export
from pseudonymize import generate_secret_file, load_key_file
from pseudonymize.sealed import PartnerKey
from schemas import load_contracts
from tests import handmade
from tests.conftest import build, kb, rows
from tests.kb_compare import differences
from tests.landing_writer import Landing, fi, hetu
from tests.privacy import _texts, landing_codes, scan
from tyokyky.cli import main

P7 = hetu(11, 11, 1960, 707)  # only in a delivery removed from the landing zone before the rotation
PERSONS = [handmade.P1, handmade.P2, handmade.P3, handmade.P4, handmade.P5, handmade.P6, P7]


def hits(root, needles: set[str]) -> list[str]:
    """Files under ``root`` (outside the landing zone) whose decompressed content holds a needle."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "landing" not in path.relative_to(root).parts:
            if any(n in text for text in _texts(path) for n in needles):
                found.append(str(path.relative_to(root)))
    return found


def no_codes(data, codes: set[str]) -> bool:
    """No identity code in anything the pipeline wrote (the landing zone lies inside DATA/ here)."""
    return scan([p for p in data.iterdir() if p.name != "landing"], codes) == []


def old_values(key) -> set[str]:
    """Every person's pseudonym under ``key`` and the erasure token made from it."""
    pseudonyms = {key.pseudonym(p) for p in PERSONS}
    return pseudonyms | {hashlib.sha256(p.encode()).hexdigest() for p in pseudonyms}


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory):
    """The hand-made landing zone, its te deliveries pseudonymised by the partner, plus P7 in a
    typ delivery; built under the old key."""
    root = tmp_path_factory.mktemp("rekey")
    old = generate_secret_file(root / "keys" / "old.key")
    raw = Landing(root / "raw")
    handmade.write(raw)
    raw.typ("2021-02", [{"hetu": P7, "kunta": "091", "alku": "2021-02-01", "loppu": None}])
    shutil.copytree(root / "raw", root / "data" / "landing", ignore=shutil.ignore_patterns("te"))
    pseudonymise_export(load_contracts()["te"], PartnerKey.issue(load_key_file(old), "te"), root / "raw" / "te",
                        root / "data" / "landing" / "te")
    build(root / "data" / "landing", root / "data", old)
    return root


@pytest.fixture
def setup(prebuilt, tmp_path):
    shutil.copytree(prebuilt / "data", tmp_path / "data")
    shutil.copytree(prebuilt / "keys", tmp_path / "keys")
    new = generate_secret_file(tmp_path / "keys" / "new.key")
    return {"data": tmp_path / "data", "landing": tmp_path / "data" / "landing", "raw": prebuilt / "raw",
            "old": tmp_path / "keys" / "old.key", "new": new,
            "codes": landing_codes(prebuilt / "raw")}


def _rekey(s, capsys=None) -> int:
    return main(["rekey", "--new-key-file", str(s["new"]), "--key-file", str(s["old"]),
                 "--landing", str(s["landing"]), "--data", str(s["data"])])


def _run(s, key) -> int:
    return main(["run", "--landing", str(s["landing"]), "--data", str(s["data"]), "--key-file", str(key)])


def test_rekey_gives_the_knowledge_base_a_build_under_the_new_key_gives(setup, tmp_path, capsys):
    s = setup
    old, new = load_key_file(s["old"]), load_key_file(s["new"])
    assert hits(s["data"], old_values(old))  # the search finds what is there
    assert no_codes(s["data"], s["codes"])
    shutil.copyfile(s["data"] / "tyokyky.duckdb", tmp_path / "before.duckdb")
    assert _rekey(s) == 0
    out = capsys.readouterr().out
    assert "no old pseudonym or erasure token" in out
    assert hits(s["data"], old_values(old)) == []
    assert no_codes(s["data"], s["codes"])
    assert staging.staged_fingerprints(s["data"] / "staging") == {new.fingerprint}
    log = [json.loads(line) for line in (s["data"] / rekey.LOG).read_text().splitlines()]
    assert log[-1]["new_key_fingerprint"] == new.fingerprint and log[-1]["files_with_old_values"] == []
    assert log[-1]["deliveries_reread"] > 0 and log[-1]["deliveries_mapped"] == 0

    build(s["raw"], tmp_path / "fresh", s["new"])  # the same deliveries, raw, under the new key
    hashes = {("kb", "deliveries"): {"content_sha256"}, ("ind", "data_quality"): {"content_sha256"}}
    assert differences(s["data"] / "tyokyky.duckdb", tmp_path / "fresh" / "tyokyky.duckdb", hashes) == {}
    assert "kb.clients" in differences(tmp_path / "before.duckdb", tmp_path / "fresh" / "tyokyky.duckdb", hashes)

    assert _run(s, s["new"]) == 0
    assert _run(s, s["old"]) == 1
    assert "pseudonymised with key fingerprint" in capsys.readouterr().err
    assert hits(s["data"], old_values(old)) == [] and no_codes(s["data"], s["codes"])
    con = kb(s["data"])
    assert rows(con, "SELECT key_fingerprint FROM kb.build_info")[0]["key_fingerprint"] == new.fingerprint
    con.close()


def test_withdrawals_keep_working_across_a_rotation(setup, capsys):
    """P5 withdrew before the rotation, P2 after it; register data of both arrives after it.
    Two deliveries are gone from the landing zone at the rotation (one of them P7's only one)."""
    s = setup
    old, new = load_key_file(s["old"]), load_key_file(s["new"])
    shutil.rmtree(s["landing"] / "typ" / "2021-02")   # P7's only delivery
    shutil.rmtree(s["landing"] / "te" / "2021-01")    # P1, who is in re-read deliveries too
    staged = {p.relative_to(s["data"]): pq.read_metadata(p).num_rows for p in s["data"].glob("staging/*/*/rows.parquet")}
    assert _rekey(s) == 0
    assert {p: pq.read_metadata(s["data"] / p).num_rows for p in staged} == staged  # every row once, none lost
    out = capsys.readouterr().out
    assert "2 mapped (1 persons only there got a layered pseudonym)" in out
    assert hits(s["data"], old_values(old)) == [] and no_codes(s["data"], s["codes"])
    con = kb(s["data"])
    clients = {r["pseudonym"] for r in rows(con, "SELECT pseudonym FROM kb.clients")}
    con.close()
    assert new.pseudonym(handmade.P1) in clients                       # linked through a re-read delivery
    assert new.pseudonym("rekeyed:" + old.pseudonym(P7)) in clients    # layered: kept, not linkable
    assert new.pseudonym(P7) not in clients

    later = Landing(s["raw"].parent / "later")
    later.csv("te", "2023-01", [[handmade.P5, "858", "01", "2023-01-01", "", "Tuusula"],
                                [handmade.P2, "186", "01", "2023-01-01", "", "Järvenpää"],
                                [handmade.P1, "091", "11", "2023-01-01", "", "Helsinki"]])
    pseudonymise_export(load_contracts()["te"], PartnerKey.issue(new, "te"), later.root / "te", s["landing"] / "te")
    Landing(s["landing"]).csv("suostumukset", "2023-01", [
        [handmade.P1, "1.1.2021", ""], [handmade.P2, "1.3.2021", fi(handmade.D(2023, 1, 10))],
        [handmade.P3, "1.9.2022", ""], [handmade.P5, "1.3.2021", "1.11.2022"]])
    assert _run(s, s["new"]) == 0
    gone = {new.pseudonym(handmade.P5), new.pseudonym(handmade.P2)}
    assert hits(s["data"], gone) == []
    assert hits(s["data"], {new.pseudonym(handmade.P1)})
    assert hits(s["data"], old_values(old)) == [] and no_codes(s["data"], s["codes"] | landing_codes(later.root))


def test_rekey_needs_the_latest_consent_snapshot(setup, capsys):
    s = setup
    shutil.rmtree(s["landing"] / "suostumukset" / "2022-12")
    assert _rekey(s) == 1
    err = capsys.readouterr().err.strip()
    assert "the latest consent snapshot (suostumukset 2022-12) is not in the landing zone" in err
    assert len(err.splitlines()) == 1
    assert staging.staged_fingerprints(s["data"] / "staging") == {load_key_file(s["old"]).fingerprint}
    assert not (s["data"] / rekey.WORK).exists()


def test_a_failed_rekey_changes_nothing(setup, monkeypatch):
    s = setup
    before = sorted(p.relative_to(s["data"]) for p in (s["data"] / "staging").rglob("*"))

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rekey.knowledge_base, "build", fail)
    assert _rekey(s) == 1
    assert not (s["data"] / rekey.WORK).exists()
    assert sorted(p.relative_to(s["data"]) for p in (s["data"] / "staging").rglob("*")) == before
    con = duckdb.connect(str(s["data"] / "tyokyky.duckdb"), read_only=True)
    assert con.sql("SELECT key_fingerprint FROM kb.build_info").fetchall()[0][0] == load_key_file(s["old"]).fingerprint
    con.close()


def test_a_rekey_killed_between_its_renames_is_completed_by_the_next_run(setup, monkeypatch, capsys):
    s = setup
    old, new = load_key_file(s["old"]), load_key_file(s["new"])

    def killed(data):  # the first rename done, then the process dies
        os.replace(data / "staging", data / rekey.WORK / "staging.old")
        raise KeyboardInterrupt

    monkeypatch.setattr(rekey, "_roll_forward", killed)
    assert _rekey(s) == 130
    assert not (s["data"] / "staging").exists() and (s["data"] / rekey.WORK / rekey.COMMIT).exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert _run(s, s["new"]) == 0
    assert "completed the interrupted key rotation" in capsys.readouterr().out
    assert not (s["data"] / rekey.WORK).exists()
    assert staging.staged_fingerprints(s["data"] / "staging") == {new.fingerprint}
    assert hits(s["data"], old_values(old)) == []


def test_rekey_misuse_is_one_line(setup, capsys):
    s = setup
    assert main(["rekey", "--new-key-file", str(s["old"]), "--key-file", str(s["old"]), "--data", str(s["data"])]) == 1
    assert "holds the key in use" in capsys.readouterr().err
    other = generate_secret_file(s["data"].parent / "keys" / "other.key")
    assert main(["rekey", "--new-key-file", str(s["new"]), "--key-file", str(other), "--data", str(s["data"]),
                 "--landing", str(s["landing"])]) == 1
    assert "was not made with the key given by --key-file" in capsys.readouterr().err
    assert main(["rekey", "--new-key-file", str(s["data"] / "nope.key"), "--key-file", str(s["old"])]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1


def test_the_scan_finds_an_old_value_in_every_kind_of_file(tmp_path):
    import pyarrow as pa

    old = hashlib.sha256(b"an old pseudonym").hexdigest()
    other = hashlib.sha256(b"a new one").hexdigest()
    pq.write_table(pa.table({"pseudonym": [other, old]}), tmp_path / "rows.parquet", compression="zstd")
    with duckdb.connect(str(tmp_path / "built.duckdb")) as con:
        con.execute("CREATE SCHEMA kb; CREATE TABLE kb.clients AS SELECT ? AS note", [f"x{old}y"])
    (tmp_path / "events.db").write_bytes(b"\x00sqlite" + old.encode() + b"\x00")
    (tmp_path / "clean.json").write_text(json.dumps({"pseudonym": other}))
    (tmp_path / "broken.duckdb").write_text(old)
    scanned, found = rekey.scan_for(tmp_path, pa.array([old]))
    assert scanned == 5 and found == ["broken.duckdb", "built.duckdb", "events.db", "rows.parquet"]
