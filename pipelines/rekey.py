"""Key rotation (``tyokyky rekey``): staging and the knowledge base re-pseudonymised under a new key.

Raw identity codes are held only inside the readers, as in a run: every loaded delivery still in
the landing zone unchanged (raw, or sealed by its partner under the old key) is staged again
from there with the new key, by the same code path as ``run``. The rows of a loaded version that
is no longer there (landing zones are cleaned after loading) cannot be re-read; their old
pseudonyms are mapped instead:

* to the new pseudonym of the same person, learnt by joining old and new staging of the
  deliveries that were re-read (same delivery, same line) — those persons stay linked;
* otherwise to a layered keyed hash, HMAC under the new key of ``"rekeyed:" + old pseudonym``
  (never equal to a code's pseudonym): the person's history stays linked within the knowledge
  base, but not to later deliveries of the same person (counted and reported).

Consent: the latest consent snapshot must be in the landing zone unchanged, so that every
withdrawal's erasure token is made again under the new key (withdrawn persons are erased
again by the rebuild); otherwise rekey refuses to start.

Atomic: the new staging and knowledge base are written under ``DATA/.rekey/``, a ``COMMIT``
file marks them complete, and then they are moved in place; :func:`recover` (run by every
``run`` under the data lock) finishes a committed swap or drops an uncommitted one. Afterwards
every file of ``DATA/`` is scanned, decompressed, for any old pseudonym or erasure token.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import knowledge_base, landing, staging
from pipelines.data_lock import DataDirBusy, data_lock
from pipelines.limits import THREADS, connect
from pipelines.settings import Settings
from pseudonymize import KeyFileError, PseudonymKey, load_key_file
from schemas import load_contracts
from schemas.casting import lit

WORK = ".rekey"
COMMIT = "COMMIT"
LOG = "rekey_log.jsonl"
HEX64 = pa.array([], pa.string())


class RekeyError(Exception):
    """Rekey cannot start or go on; one line. Nothing in place has been changed."""


@dataclass
class RekeyReport:
    old_fingerprint: str
    new_fingerprint: str
    restaged: list[str] = field(default_factory=list)   # "partner period" re-read from the landing zone
    mapped: list[str] = field(default_factory=list)     # not in the landing zone: old pseudonyms mapped
    persons_layered: int = 0                            # of them, persons with no re-read delivery
    old_values: int = 0                                 # old pseudonyms and erasure tokens looked for
    files_scanned: int = 0
    found: list[str] = field(default_factory=list)      # files still holding one (must stay empty)

    def summary(self) -> str:
        return (f"rekeyed {self.old_fingerprint[:12]} -> {self.new_fingerprint[:12]}: {len(self.restaged)} deliveries "
                f"re-read from the landing zone, {len(self.mapped)} mapped ({self.persons_layered} persons only "
                f"there got a layered pseudonym); {self.files_scanned} files in the data directory scanned, no "
                f"old pseudonym or erasure token among {self.old_values} left; run 'tyokyky run' with the new key")


# ---------------------------------------------------------------- atomic swap and recovery
def _roll_forward(data: Path) -> None:
    """Move a committed rekey in place (each step can be repeated after a crash)."""
    work = data / WORK
    new_staging, old_staging = work / "staging", work / "staging.old"
    if new_staging.exists():
        if (data / "staging").exists():
            os.replace(data / "staging", old_staging)
        os.replace(new_staging, data / "staging")
    if (work / knowledge_base_file(data)).exists():
        os.replace(work / knowledge_base_file(data), data / knowledge_base_file(data))
    shutil.rmtree(work)


def knowledge_base_file(data: Path) -> str:
    return Settings(Path("."), data, None).kb_path.name


def recover(data: Path) -> list[str]:
    """Finish a rekey that committed, or drop one that did not (under the data lock)."""
    work = Path(data) / WORK
    if not work.exists():
        return []
    if (work / COMMIT).exists():
        _roll_forward(Path(data))
        return ["completed the interrupted key rotation (rekey)"]
    shutil.rmtree(work)
    return ["removed the unfinished key rotation (rekey); the data under the old key is in place"]


# ---------------------------------------------------------------- re-pseudonymisation
class RotationKey:
    """Stages under the new key, but opens deliveries the partners sealed under the old one
    (:func:`pipelines.sealed_intake.read_any` looks for ``opening_key``)."""

    def __init__(self, old: PseudonymKey, new: PseudonymKey):
        self.opening_key, self._new = old, new
        self.fingerprint, self.short_fingerprint = new.fingerprint, new.short_fingerprint

    def hash_states(self):
        return self._new.hash_states()


def _old_values(con, staging_dir: Path) -> None:
    """Temp table ``old_values``: every old pseudonym and erasure token of staging, and the tokens
    they would give."""
    files = sorted(str(p) for p in Path(staging_dir).glob("*/*/rows.parquet"))
    con.execute("CREATE TEMP TABLE old_values (v VARCHAR)")
    if files:
        con.execute(f"""INSERT INTO old_values SELECT DISTINCT unnest([pseudonym, sha256(pseudonym)])
                        FROM read_parquet([{', '.join(map(lit, files))}], union_by_name = true)""")
    tokens = [f for f in files if "erasure_token" in pq.read_schema(f).names]
    if tokens:
        con.execute(f"INSERT INTO old_values SELECT DISTINCT erasure_token FROM read_parquet([{', '.join(map(lit, tokens))}])")
    con.execute("DELETE FROM old_values WHERE v IS NULL")


def _layered(new_key: PseudonymKey, values: list[str], prefix: str) -> list[str]:
    return [new_key.pseudonym(prefix + v) for v in values]


def _map_file(con, old_rows: Path, new_rows: Path, new_key: PseudonymKey) -> int:
    """Copy a delivery that cannot be re-read with its pseudonyms (and erasure tokens) mapped;
    returns how many distinct persons got a layered pseudonym."""
    con.execute("CREATE OR REPLACE TEMP TABLE rows_old AS SELECT * FROM read_parquet(?)", [str(old_rows)])
    orphans = [r[0] for r in con.execute("""SELECT DISTINCT pseudonym FROM rows_old WHERE pseudonym IS NOT NULL
                                             AND pseudonym NOT IN (SELECT old FROM pseudonym_map)""").fetchall()]
    con.register("layered_now", pa.table({"old": pa.array(orphans, pa.string()),
                                          "new": pa.array(_layered(new_key, orphans, "rekeyed:"), pa.string())}))
    con.execute("INSERT INTO pseudonym_map SELECT old, new FROM layered_now")
    con.unregister("layered_now")
    cols = [r[0] for r in con.execute("SELECT name FROM (DESCRIBE rows_old) t(name)").fetchall()]
    select = ["m.new AS pseudonym" if c == "pseudonym" else f'o."{c}"' for c in cols]
    if "erasure_token" in cols:
        tokens = [r[0] for r in con.execute("""SELECT DISTINCT erasure_token FROM rows_old WHERE pseudonym IS NULL
              AND erasure_token NOT IN (SELECT old FROM token_map)""").fetchall()]
        layered = [hashlib.sha256(p.encode()).hexdigest() for p in _layered(new_key, tokens, "rekeyed-token:")]
        con.register("tokens_now", pa.table({"old": pa.array(tokens, pa.string()), "new": pa.array(layered, pa.string())}))
        con.execute("INSERT INTO token_map SELECT old, new FROM tokens_now")
        con.unregister("tokens_now")
        select[cols.index("erasure_token")] = ("CASE WHEN o.pseudonym IS NULL THEN t.new ELSE sha256(m.new) END "
                                               "AS erasure_token")
    tokens_join = ("LEFT JOIN (SELECT DISTINCT old, new FROM token_map) t ON t.old = o.erasure_token"
                   if "erasure_token" in cols else "")
    tmp = new_rows.with_suffix(".tmp")
    con.execute(f"""COPY (SELECT {', '.join(select)} FROM rows_old o
                          LEFT JOIN (SELECT DISTINCT old, new FROM pseudonym_map) m ON m.old = o.pseudonym
                          {tokens_join} ORDER BY o.source_line)
                    TO {lit(str(tmp))} (FORMAT parquet, COMPRESSION zstd)""")
    os.replace(tmp, new_rows)
    return len(orphans)


def _learn_map(con, old_rows: Path, new_rows: Path) -> None:
    """Old and new pseudonyms (and erasure tokens) of the same rows of a re-read delivery."""
    con.execute(f"""INSERT INTO pseudonym_map SELECT DISTINCT o.pseudonym, n.pseudonym
                    FROM read_parquet({lit(str(old_rows))}) o
                    JOIN read_parquet({lit(str(new_rows))}) n USING (source_line) WHERE o.pseudonym IS NOT NULL AND n.pseudonym IS NOT NULL""")
    if "erasure_token" in pq.read_schema(old_rows).names:
        con.execute(f"""INSERT INTO token_map SELECT DISTINCT o.erasure_token, n.erasure_token
                        FROM read_parquet({lit(str(old_rows))}) o JOIN read_parquet({lit(str(new_rows))}) n
                        USING (source_line)""")


def _with_key(attempt: dict | None, fingerprint: str) -> dict | None:
    return None if attempt is None else {**attempt, "key_fingerprint": fingerprint}


def _rekey_staging(settings: Settings, old_key: PseudonymKey, new_key: PseudonymKey, new_staging: Path,
                   report: RekeyReport, log) -> None:
    contracts = load_contracts()
    try:
        present, _ = landing.scan(settings.landing, contracts, settings.landing_hashes)
    except (landing.LandingError, OSError):
        present = []
    by_period = {(d.partner, d.period): d for d in present}
    states = staging.delivery_states(settings.staging)
    consent = next((p for p, c in contracts.items() if c.consent), None)
    snapshots = [s for s in states if s["partner"] == consent and s.get("loaded")]
    if snapshots:
        latest = max(snapshots, key=lambda s: s["period"])
        there = by_period.get((consent, latest["period"]))
        if there is None or there.content_sha256 != latest["loaded"]["content_sha256"]:
            raise RekeyError(f"the latest consent snapshot ({consent} {latest['period']}) is not in the landing zone "
                             f"{settings.landing} as loaded: withdrawals could not be carried to the new key; put "
                             "that delivery back (or pass --landing) and run rekey again")
    new_staging.mkdir(parents=True)
    con = connect()
    try:
        con.execute("CREATE TEMP TABLE pseudonym_map (old VARCHAR, new VARCHAR)")
        con.execute("CREATE TEMP TABLE token_map (old VARCHAR, new VARCHAR)")
        again, later = [], []
        for state in states:
            delivery, loaded = by_period.get((state["partner"], state["period"])), state.get("loaded")
            if loaded and state["partner"] in contracts and delivery is not None and delivery.problem is None \
                    and delivery.content_sha256 == loaded["content_sha256"]:
                again.append((state, delivery))
            else:
                later.append(state)
        rotation = RotationKey(old_key, new_key)

        def stage_again(item) -> None:
            state, delivery = item
            attempt = staging.stage_delivery(new_staging, delivery, contracts[state["partner"]], rotation)
            if attempt.status != "loaded" or attempt.rows_read != state["loaded"]["rows_read"]:
                raise RekeyError(f"{state['partner']} {state['period']} could not be read again from the landing "
                                 f"zone ({attempt.reason or 'other rows'}); nothing was changed")

        # largest first, side by side as run stages (pyarrow and DuckDB release the GIL)
        again.sort(key=lambda item: -item[1].file.stat().st_size)
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            list(pool.map(stage_again, again))
        for state, _ in again:
            partner, period = state["partner"], state["period"]
            _learn_map(con, settings.staging / partner / period / "rows.parquet",
                       new_staging / partner / period / "rows.parquet")
            report.restaged.append(f"{partner} {period}")
        for state in later:  # after every re-read delivery has taught the map
            partner, period, loaded = state["partner"], state["period"], state.get("loaded")
            old_dir, new_dir = settings.staging / partner / period, new_staging / partner / period
            new_dir.mkdir(parents=True)
            if loaded and (old_dir / "rows.parquet").exists():
                report.persons_layered += _map_file(con, old_dir / "rows.parquet", new_dir / "rows.parquet", new_key)
                report.mapped.append(f"{partner} {period}")
            if (old_dir / "quarantine.parquet").exists():  # lines and reasons: no pseudonym
                shutil.copyfile(old_dir / "quarantine.parquet", new_dir / "quarantine.parquet")
            fresh = {k: v for k, v in state.items() if k != "erasure_checked"}
            fresh.update(loaded=_with_key(loaded, new_key.fingerprint),
                         last_attempt=_with_key(state.get("last_attempt"), new_key.fingerprint))
            staging.write_state(new_dir, fresh)
    finally:
        con.close()
    hashes = settings.landing_hashes
    if hashes.exists():  # content hashes by file path hash: no pseudonym
        shutil.copyfile(hashes, new_staging / hashes.name)
    log(f"rekey: {len(report.restaged)} deliveries re-read, {len(report.mapped)} mapped")


# ---------------------------------------------------------------- the proof
def _strings_in(path: Path) -> pa.Array:
    """Every 64-hex value a file holds, decompressed where it is compressed."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        texts = [c.combine_chunks() for c in table.columns if pa.types.is_string(c.type)]
        return pa.concat_arrays(texts) if texts else HEX64
    if path.suffix == ".duckdb":
        found = []
        try:
            db = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:  # not a database after all: its bytes, then
            return pa.array(_hex_runs(path.read_bytes().decode("latin-1")), pa.string())
        try:
            for schema, table, column in db.execute("""SELECT schema_name, table_name, column_name FROM duckdb_columns()
                    WHERE data_type = 'VARCHAR' AND NOT internal AND database_name = current_database()""").fetchall():
                found += [r[0] for r in db.execute(f'SELECT DISTINCT regexp_extract("{column}", '
                                                   f"'[0-9a-f]{{64}}') FROM \"{schema}\".\"{table}\"").fetchall()]
        finally:
            db.close()
        return pa.array(found, pa.string())
    text = path.read_bytes().decode("latin-1")
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        text += " ".join(page.extract_text() or "" for page in PdfReader(path).pages)
    return pa.array(_hex_runs(text), pa.string())


def _hex_runs(text: str) -> list[str]:
    return [m.group(0)[i:i + 64] for m in re.finditer(r"[0-9a-f]{64,}", text) for i in range(len(m.group(0)) - 63)]


def scan_for(data: Path, old: pa.Array, verified: set[str] = frozenset()) -> tuple[int, list[str]]:
    """(files scanned, files holding any of ``old``): Parquet read back, DuckDB queried column by
    column, a PDF as bytes and as extracted text, every other file as bytes (Dagster's SQLite
    storage, JSON, logs). ``verified``: paths (relative to ``data``) scanned already and moved in
    unchanged since, under the data lock. Values are looked up in batches (one hash table each)."""
    wanted = pc.unique(old)
    scanned, found, batch, owners = 0, [], [], []

    def look_up() -> None:
        if batch:
            hits = pc.is_in(pa.concat_arrays(batch), value_set=wanted).to_numpy(zero_copy_only=False)
            ends = np.cumsum([len(b) for b in batch])
            found.extend(owners[i] for i in sorted(set(np.searchsorted(ends, np.flatnonzero(hits), side="right"))))
            batch.clear()
            owners.clear()

    for path in sorted(Path(data).rglob("*")):
        relative = str(path.relative_to(data))
        if not path.is_file() or path.is_symlink() or relative in verified:
            continue
        scanned += 1
        values = pc.unique(_strings_in(path))
        if len(values):
            batch.append(values)
            owners.append(relative)
        if sum(len(b) for b in batch) > 2_000_000:
            look_up()
    look_up()
    return scanned, sorted(found)


# ---------------------------------------------------------------- the command
def rekey(settings: Settings, new_key_file: Path, log=print) -> RekeyReport:
    """Re-pseudonymise ``DATA/staging`` and the knowledge base under the key in ``new_key_file``."""
    try:
        old_key = load_key_file(settings.key_file)
        new_key = load_key_file(new_key_file)
    except KeyFileError as e:
        raise RekeyError(str(e)) from None
    if old_key.fingerprint == new_key.fingerprint:
        raise RekeyError(f"{new_key_file} holds the key in use (fingerprint {new_key.short_fingerprint}): "
                         "make a new one with 'tyokyky keygen --out FILE'")
    try:
        with data_lock(settings.data, "tyokyky rekey"):
            return _rekey_locked(settings, old_key, new_key, log)
    except DataDirBusy as e:
        raise RekeyError(str(e)) from None


def _rekey_locked(settings: Settings, old_key: PseudonymKey, new_key: PseudonymKey, log) -> RekeyReport:
    for note in recover(settings.data) + staging.recover(settings.staging):
        log(f"rekey: {note}")
    found = staging.staged_fingerprints(settings.staging)
    if found == {new_key.fingerprint}:
        raise RekeyError(f"staging in {settings.staging} is already under the new key {new_key.short_fingerprint}: "
                         "nothing to do; run 'tyokyky run' with the new key")
    if found - {old_key.fingerprint}:
        raise RekeyError(f"staging in {settings.staging} was not made with the key given by --key-file "
                         f"({old_key.short_fingerprint}): pass the key currently in use")
    report = RekeyReport(old_key.fingerprint, new_key.fingerprint)
    work = settings.data / WORK
    con = connect()
    try:
        _old_values(con, settings.staging)
        if settings.kb_path.exists():  # every value a pseudonym column of the old knowledge base holds
            con.execute(f"ATTACH {lit(str(settings.kb_path))} AS old_kb (READ_ONLY)")
            for schema, table in con.execute("""SELECT DISTINCT c.schema_name, c.table_name FROM duckdb_columns() c
                    JOIN duckdb_tables() t USING (database_name, schema_name, table_name)
                    WHERE c.database_name = 'old_kb' AND c.column_name = 'pseudonym'""").fetchall():
                con.execute(f'INSERT INTO old_values SELECT DISTINCT pseudonym FROM old_kb."{schema}"."{table}" '
                            'WHERE pseudonym IS NOT NULL')
            con.execute("DETACH old_kb")
        old = con.sql("SELECT DISTINCT v FROM old_values").to_arrow_table().column(0)
    finally:
        con.close()
    old = old.combine_chunks() if isinstance(old, pa.ChunkedArray) else old
    report.old_values = len(old)
    try:
        _rekey_staging(settings, old_key, new_key, work / "staging", report, log)
        contracts = load_contracts()
        knowledge_base.build(work / "staging", work / knowledge_base_file(settings.data), contracts,
                             new_key.fingerprint, knowledge_base.load_parameters(settings.parameters_file),
                             landing_scan=landing.inventory(settings.landing, contracts))
        for cache in (work / "staging").glob("*/_superseded.*"):
            cache.unlink()  # made again by the next run's build
        verified_count, report.found = scan_for(work, old)
        verified = {str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()}
        if report.found:  # cannot happen unless a step above is wrong: keep the old data in place
            raise RekeyError(f"old pseudonyms remain in the rekeyed {report.found[0]}; nothing was changed")
        (work / COMMIT).write_text(json.dumps({"new_fingerprint": new_key.fingerprint}))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _roll_forward(settings.data)
    report.files_scanned, report.found = scan_for(settings.data, old, verified)
    report.files_scanned += verified_count
    home = settings.dagster_home
    if home.exists() and not home.resolve().is_relative_to(settings.data.resolve()):  # DAGSTER_HOME elsewhere
        scanned, found = scan_for(home, old)
        report.files_scanned += scanned
        report.found += [str(home / f) for f in found]
    record = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "old_key_fingerprint": old_key.fingerprint, "new_key_fingerprint": new_key.fingerprint,
              "deliveries_reread": len(report.restaged), "deliveries_mapped": len(report.mapped),
              "persons_layered": report.persons_layered, "old_values_looked_for": report.old_values,
              "files_scanned": report.files_scanned, "files_with_old_values": report.found}
    with open(settings.data / LOG, "a") as f:
        f.write(json.dumps(record) + "\n")
    if report.found:
        raise RekeyError(f"old pseudonyms remain in {', '.join(report.found[:3])} of {settings.data}: the data is "
                         "under the new key, but these files must be removed by hand (see rekey_log.jsonl)")
    return report
