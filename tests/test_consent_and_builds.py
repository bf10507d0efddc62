"""Consent, atomic builds, idempotence, incremental builds and key mixing."""
import errno
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines import knowledge_base, view_answers
from pipelines import landing as landing_zone
from pipelines.settings import Settings
from pseudonymize import generate_secret_file, load_key_file
from schemas import load_contracts
from tests import handmade
from tests.conftest import build, kb, rows
from tests.landing_writer import Landing
from tyokyky.run import BuildStopped


def all_text_hits(root, needle):
    """Every output file under root whose (decompressed) content holds ``needle``."""
    hits = []
    from tests.privacy import _texts

    for path in sorted(root.rglob("*")):
        if path.is_file() and "landing" not in path.parts:
            if any(needle in text for text in _texts(path)):
                hits.append(str(path.relative_to(root)))
    return hits


@pytest.fixture(scope="module")
def handmade_build(tmp_path_factory, session_key_file):
    root = tmp_path_factory.mktemp("consent")
    handmade.write(Landing(root / "landing"))
    build(root / "landing", root / "data", session_key_file)
    return root


def test_withdrawal_leaves_no_trace(handmade_build, session_key_file):
    key = load_key_file(session_key_file)
    withdrawn = key.pseudonym(handmade.P5)
    assert all_text_hits(handmade_build / "data", withdrawn) == []
    # ... while a person with consent is there, so the search itself works
    assert all_text_hits(handmade_build / "data", key.pseudonym(handmade.P1))


def test_client_without_consent_is_held_back_and_counted(handmade_build, session_key_file):
    key = load_key_file(session_key_file)
    held = key.pseudonym(handmade.P4)
    con = kb(handmade_build / "data")
    try:
        for schema, table in con.sql("SELECT schema_name, table_name FROM duckdb_tables()").fetchall():
            text = " ".join(str(v) for r in con.sql(f"SELECT * FROM {schema}.{table}").fetchall() for v in r)
            assert held not in text, table
        assert rows(con, "SELECT awaiting_consent FROM kb.build_info")[0]["awaiting_consent"] == 1
    finally:
        con.close()


def test_consent_arriving_later_brings_the_client_in(tmp_path, key_file, built_once):
    landing, _ = built_once
    (landing.root / "suostumukset" / "2022-12" / "suostumukset_202212.csv").unlink()
    landing.csv("suostumukset", "2022-12", [[handmade.P1, "1.1.2021", ""], [handmade.P2, "1.3.2021", ""],
                                            [handmade.P3, "1.9.2022", ""], [handmade.P4, "1.12.2022", ""],
                                            [handmade.P5, "1.3.2021", "1.11.2022"]])
    build(landing.root, tmp_path / "data", key_file)
    con = kb(tmp_path / "data")
    try:
        info = rows(con, "SELECT programme_clients, awaiting_consent, withdrawn_erased FROM kb.build_info")[0]
        assert info == {"programme_clients": 4, "awaiting_consent": 0, "withdrawn_erased": 1}
        p4 = load_key_file(key_file).pseudonym(handmade.P4)
        assert rows(con, f"SELECT count(*) AS n FROM kb.status_spells WHERE pseudonym = '{p4}'")[0]["n"] == 1
    finally:
        con.close()


@pytest.fixture
def built_once(tmp_path, key_file):
    """The hand-made landing zone, built once through Dagster: (landing, data directory)."""
    landing = Landing(tmp_path / "landing")
    handmade.write(landing)
    build(landing.root, tmp_path / "data", key_file)
    return landing, tmp_path / "data"


def _ind_snapshot(data):
    """Every indicator view's rows (order-insensitive)."""
    return {name[4:]: rows for name, rows in _everything(data).items() if name.startswith("ind.")}


def test_idempotent_and_incremental(tmp_path, key_file, built_once):
    landing, data = built_once
    first = _ind_snapshot(data)
    summary = build(landing.root, data, key_file)
    assert summary.staged == {}  # nothing changed: nothing staged again
    assert _ind_snapshot(data) == first
    # one new TE delivery in 2023-01: as_of moves, P6 finds work; only what it touches changes
    landing.csv("te", "2023-01", [[handmade.P6, "858", "01", "2019-01-01", "2023-01-09", "Tuusula"],
                                  [handmade.P6, "858", "11", "2023-01-10", "", "Tuusula"]])
    summary = build(landing.root, data, key_file)
    assert summary.staged == {"te": ["2023-01"]}
    after = _ind_snapshot(data)
    unchanged = ["coaching_placements", "measure_change", "pathway_transitions", "pathway_variants", "ttk_process",
                 "savings_scenario", "time_to_next_service", "consent_status", "quarantine_summary"]
    for view in unchanged:
        assert after[view] == first[view], view
    assert len(after["data_quality"]) == len(first["data_quality"]) + 1


def test_failed_build_leaves_previous_database_untouched(tmp_path, key_file, built_once, monkeypatch):
    """A view that does not answer on the new file stops the build before the swap."""
    landing, data = built_once
    settings = Settings(landing.root, data, key_file)
    before = settings.kb_path.read_bytes()
    landing.csv("te", "2023-01", [[handmade.P6, "858", "11", "2023-01-10", "", "Tuusula"]])
    real = view_answers.evaluate
    monkeypatch.setattr(view_answers, "evaluate", lambda *a: {**real(*a), "cost_savings": None})
    with pytest.raises(knowledge_base.KnowledgeBaseError,
                       match="^indicator view\\(s\\) cost_savings do not answer; the build is not swapped in$"):
        knowledge_base.build(settings.staging, settings.kb_path, load_contracts(),
                             load_key_file(key_file).fingerprint)
    assert settings.kb_path.read_bytes() == before
    assert not list(data.glob("*.building*"))
    con = duckdb.connect(str(settings.kb_path), read_only=True)
    assert con.sql("SELECT as_of FROM kb.build_info").fetchall()[0][0].isoformat() == "2022-12-31"
    con.close()
    con = view_answers.connect(settings.kb_path)  # the answers kept are still the file's, and used
    assert con.sql("SELECT database_name FROM duckdb_databases() WHERE database_name = 'kept_answers'").fetchall()
    con.close()


def test_a_failed_copy_of_the_previous_file_stops_the_build(key_file, built_once, monkeypatch):
    """The previous file is copied in the background while the latest versions are found: a copy
    that fails (a full disk) stops the build where the copy is taken, and nothing is left."""
    landing, data = built_once
    settings = Settings(landing.root, data, key_file)
    landing.csv("te", "2023-01", [[handmade.P6, "858", "11", "2023-01-10", "", "Tuusula"]])
    build(landing.root, data, key_file)  # staged, and a knowledge base that carries tables forward
    before = settings.kb_path.read_bytes()

    def full_disk(source, dest):
        Path(dest).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))
    monkeypatch.setattr(knowledge_base.shutil, "copyfile", full_disk)
    with pytest.raises(OSError, match="No space left"):
        knowledge_base.build(settings.staging, settings.kb_path, load_contracts(), load_key_file(key_file).fingerprint)
    assert settings.kb_path.read_bytes() == before
    assert not list(data.glob("*.building*"))


def test_refuses_to_mix_keys(tmp_path, key_file, built_once):
    landing, data = built_once
    other = generate_secret_file(tmp_path / "other.key")
    with pytest.raises(BuildStopped, match="pseudonymised with key fingerprint"):
        build(landing.root, data, other)
    settings = Settings(landing.root, data, key_file)
    with pytest.raises(knowledge_base.KnowledgeBaseError, match="refusing to mix keys"):
        knowledge_base.build(settings.staging, settings.kb_path, load_contracts(), load_key_file(other).fingerprint)


def test_evaluators_cannot_write(handmade_build):
    con = kb(handmade_build / "data")
    try:
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM kb.clients")
        with pytest.raises(duckdb.Error):
            con.execute("CREATE TABLE kb.mine AS SELECT 1")
    finally:
        con.close()


def test_all_faults_at_once_still_load_everything_else(tmp_path, key_file):
    """Every rejection and row error of the spec in one landing zone, built through Dagster."""
    landing = Landing(tmp_path / "landing")
    handmade.write(landing)
    T = [handmade.P1, "91", "TE", "1.1.2021", "1.2.2021", "", "", "LAAKARI"]
    landing.csv("ttk", "2021-06", [T[:4] + ["31.2.2021"] + T[5:], [handmade.P2, ""] + T[2:], T[:5] + ["1.1.2021"] + T[6:],
                                   T[:2] + ["XX"] + T[3:], [handmade.P1[:10] + "Q"] + T[1:]])
    landing.raw("ttk", "2021-07", b"")
    landing.csv("ttk", "2021-08", [T], header="henkilotunnus;kuntakoodi")
    landing.raw("ttk", "2021-09", "henkilotunnus\nä\n".encode("iso-8859-1"))
    landing.kela("2021-06", [(handmade.P1, "202106", "TMTU", 20, 100, 50)], trailer_count=2)
    landing.kela("2021-07", [(handmade.P1, "202107", "TMTU", 20, 100, 50)], trailer=False)
    landing.raw("valmennus", "2021-07", b"not a workbook")
    landing.valmennus("2021-08", [], sheet="Sheet1")
    landing.typ("2021-06", ["[]", "nonsense"])
    landing.csv("kunta", "2021-06", [[handmade.P1, "091", "KOULUTUS", "2021-06-01", ""]], name="kunta_2021.csv")
    landing.csv("kunta", "2021-07", [[handmade.P1, "091", "KOULUTUS", "2021-07-01", ""]])
    landing.csv("kunta", "2021-07", [[handmade.P1, "091", "KOULUTUS", "2021-07-02", ""]], name="kunta_palvelut_202107b.csv")
    landing.csv("mittarit", "2021-06", [[handmade.P1, "1.6.2021", "TKI", "ALKU", "12"]])
    summary = build(landing.root, tmp_path / "data", key_file)
    assert len(summary.rejected) == 9
    con = kb(tmp_path / "data")
    try:
        dq = {(r["partner"], r["period"]): r for r in rows(con, "SELECT * FROM ind.data_quality")}
        assert dq[("ttk", "2021-06")]["rows_quarantined"] == 5 and dq[("ttk", "2021-06")]["status"] == "loaded"
        assert {k for k, r in dq.items() if r["status"] == "rejected"} == {
            ("ttk", "2021-07"), ("ttk", "2021-08"), ("ttk", "2021-09"), ("kela", "2021-06"), ("kela", "2021-07"),
            ("valmennus", "2021-07"), ("valmennus", "2021-08"), ("kunta", "2021-06"), ("kunta", "2021-07")}
        # lines that are not JSON objects are row errors: the delivery loads with nothing in it
        assert (dq[("typ", "2021-06")]["status"], dq[("typ", "2021-06")]["rows_quarantined"]) == ("loaded", 2)
        assert all(r["reason"] for r in dq.values() if r["status"] == "rejected")
        # everything else loaded exactly as in the clean hand-made build
        assert rows(con, "SELECT programme_clients FROM kb.build_info")[0]["programme_clients"] == 3
        assert rows(con, "SELECT count(*) AS n FROM ind.employment_outcomes")[0]["n"] == 3
        q = rows(con, "SELECT reason FROM kb.quarantine WHERE partner = 'ttk' AND period = '2021-06' ORDER BY line")
        assert [r["reason"] for r in q] == [
            "alkupvm: not a valid date in format d.m.yyyy", "kuntakoodi: required field empty",
            "loppupvm is before alkupvm", "lahettava_taho: not one of TE, TYP, SOSIAALI, TERVEYS, KUNTA, KELA, OMA",
            "henkilotunnus: bad check character"]
    finally:
        con.close()


def test_withdrawal_after_an_earlier_build_erases_caches_too(tmp_path, key_file):
    """P5 is in force at the first build (rows cached in staging), withdraws in the next snapshot."""
    landing = Landing(tmp_path / "landing")
    handmade.write(landing)
    snapshot = landing.root / "suostumukset" / "2022-12"
    shutil.move(snapshot, tmp_path / "later_snapshot")
    data = tmp_path / "data"
    build(landing.root, data, key_file)
    p5 = load_key_file(key_file).pseudonym(handmade.P5)
    assert all_text_hits(data, p5)  # in force: P5 is everywhere, caches included
    shutil.move(tmp_path / "later_snapshot", snapshot)
    summary = build(landing.root, data, key_file)
    assert summary.staged == {"suostumukset": ["2022-12"]}
    assert all_text_hits(data, p5) == []
    assert list(data.glob("staging/*/_superseded.parquet"))  # the caches: lines to skip, no pseudonym in them


def _everything(data):
    con = kb(data)
    try:
        out = {}
        for schema, name in con.sql("""SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name = 'kb'
                                       UNION ALL SELECT schema_name, view_name FROM duckdb_views()
                                       WHERE schema_name = 'ind'""").fetchall():
            if (schema, name) not in (("kb", "build_info"), ("kb", "deliveries"), ("kb", "build_inputs")):  # times, paths
                out[f"{schema}.{name}"] = sorted(con.sql(f"SELECT * FROM {schema}.{name}").fetchall(), key=repr)
        return out
    finally:
        con.close()


def test_incremental_build_carries_tables_forward_and_equals_a_fresh_build(tmp_path, key_file, built_once,
                                                                          monkeypatch):
    landing, data = built_once
    settings = Settings(landing.root, data, key_file)
    previous = settings.kb_path.read_bytes()
    landing.csv("te", "2023-01", [[handmade.P6, "858", "11", "2023-01-10", "", "Tuusula"],
                                  [handmade.P1, "186", "01", "2023-01-02", "", "Järvenpää"]])
    build(landing.root, data, key_file)
    settings.kb_path.write_bytes(previous)  # the build before the TE month, to build over it again here
    fingerprint = load_key_file(key_file).fingerprint
    one_month = knowledge_base.build(settings.staging, settings.kb_path, load_contracts(), fingerprint,
                                     landing_scan=landing_zone.scan(landing.root, load_contracts()))
    # TE changed: its tables and kb.clients are made again, kb.person_sources for TE's rows only
    assert one_month.carried_forward == ["benefits", "coaching", "episodes", "measurements"]
    assert one_month.refreshed == {"person_sources": ["te"]}
    again = knowledge_base.build(settings.staging, settings.kb_path, load_contracts(), fingerprint,
                                 landing_scan=landing_zone.scan(landing.root, load_contracts()))
    # nothing changed since: every table is carried forward (kb.clients too: all its partners are unchanged)
    assert again.carried_forward == ["benefits", "clients", "coaching", "episodes", "measurements",
                                     "person_sources", "status_spells"]
    assert again.refreshed == {}
    digest = knowledge_base.sql_digest
    monkeypatch.setattr(knowledge_base, "sql_digest",  # a kb table's SQL changed
                        lambda folder: "other SQL" if folder == "kb" else digest(folder))
    remade = knowledge_base.build(settings.staging, settings.kb_path, load_contracts(), fingerprint,
                                  landing_scan=landing_zone.scan(landing.root, load_contracts()))
    assert (remade.carried_forward, remade.refreshed) == ([], {})
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    build(landing.root, fresh, key_file)
    assert _everything(data) == _everything(fresh)


def _superseded(data, partner):
    import pyarrow.parquet as pq

    return sorted((r["file"], r["line"]) for r in pq.read_table(data / "staging" / partner / "_superseded.parquet")
                  .to_pylist())


def test_a_new_month_extends_the_superseded_list_as_a_full_recompute_would(tmp_path, key_file, built_once):
    """A monthly delivery updates the list of superseded lines from its own keys; the list equals
    the one a full recompute makes (P6's 2019 spell delivered again, with its end, supersedes)."""
    landing, data = built_once
    before = _superseded(data, "te")
    landing.csv("te", "2023-01", [[handmade.P6, "858", "01", "2019-01-01", "2023-01-09", "Tuusula"],
                                  [handmade.P6, "858", "11", "2023-01-10", "", "Tuusula"]])
    build(landing.root, data, key_file)
    incremental = _superseded(data, "te")
    assert set(before) < set(incremental)  # the earlier version of P6's spell is superseded now
    assert not [f for f, _ in incremental if "2023-01" in f]  # the newest versions stay
    (data / "staging" / "te" / "_superseded.json").unlink()   # no cache: made anew from every file
    settings = Settings(landing.root, data, key_file)
    knowledge_base.build(settings.staging, settings.kb_path, load_contracts(), load_key_file(key_file).fingerprint,
                         landing_scan=landing_zone.scan(landing.root, load_contracts()))
    assert _superseded(data, "te") == incremental


def test_the_superseded_list_is_made_anew_unless_only_later_periods_were_added():
    appended = knowledge_base._appended
    base = ["1", [["pseudonym", "VARCHAR"]]]
    old = [["s/te/2022-11/rows.parquet", 10, 1], ["s/te/2022-12/rows.parquet", 10, 2]]
    cached = {"stamp": old, "erasure": "d", "base": base}
    new = ["s/te/2023-01/rows.parquet", 5, 3]
    assert appended(cached, old + [new], "d", base) == ["s/te/2023-01/rows.parquet"]
    assert appended(cached, old + [new], "other withdrawals", base) is None
    assert appended(cached, old + [new], "d", ["2", base[1]]) is None
    assert appended(cached, [old[0], ["s/te/2022-12/rows.parquet", 11, 4], new], "d", base) is None  # re-delivered
    assert appended(cached, old + [["s/te/2022-10/rows.parquet", 5, 3]], "d", base) is None  # an earlier period
    assert appended(cached, old, "d", base) is None and appended({}, old, "d", base) is None
