"""Build the DuckDB knowledge base (schemas ``kb`` and ``ind``) from staging.

Order of work:

1. refuse staging that mixes key fingerprints;
2. apply the latest consent snapshot: withdrawn persons are purged from every staging
   file first, programme clients without consent are held back;
3. build every table and view into a *new* file, check it, and only then swap it in
   with one rename, so evaluators never see a half-built database and a failed build
   leaves the previous one untouched.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from assets import timing
from assets.staging import MEMORY_LIMIT, PIPELINE_VERSION
from schemas.casting import q, staging_columns
from schemas.contract import Contract

HERE = Path(__file__).parent
KB_TABLES = ["clients", "episodes", "coaching", "status_spells", "benefits", "measurements"]
REQUIRED_VIEWS = ["employment_outcomes", "coaching_placements", "ttk_process", "pathway_transitions",
                  "measure_change", "cost_savings", "savings_scenario", "data_quality"]


class KnowledgeBaseError(Exception):
    """The build cannot go on; one line for the user. The previous database stays."""


@dataclass
class BuildResult:
    path: Path
    as_of: dt.date | None
    clients: int
    programme_clients: int
    awaiting_consent: int
    withdrawn_erased: int
    purged_rows: int
    tables: dict[str, int]


def load_parameters(path: str | Path | None = None) -> dict:
    """Plan defaults, overridden key by key from ``path`` when given."""
    params = yaml.safe_load((HERE / "parameters.yaml").read_text())
    if path:
        override = yaml.safe_load(Path(path).read_text()) or {}
        for section, values in override.items():
            if section not in params:
                raise KnowledgeBaseError(f"parameters file {path}: unknown section {section!r}")
            params[section].update(values or {})
    return params


def _deliveries(staging: Path) -> list[dict]:
    out = []
    for path in sorted(Path(staging).glob("*/*/delivery.json")):
        state = json.loads(path.read_text())
        state["dir"] = path.parent
        out.append(state)
    return out


def _rows_file(state: dict) -> Path | None:
    f = state["dir"] / "rows.parquet"
    return f if state.get("loaded") and f.exists() else None


def _files_sql(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


def _token_digest(con) -> str:
    """Identifies the set of withdrawn persons (their erasure tokens)."""
    return con.sql("SELECT sha256(coalesce(string_agg(erasure_token, ',' ORDER BY erasure_token), '')) "
                   "FROM withdrawn").fetchall()[0][0]


def _apply_erasure(con: duckdb.DuckDBPyConnection, deliveries: list[dict], staging: Path, digest: str) -> int:
    """Remove the withdrawn persons' rows from every staging file that holds any.

    A delivery remembers the withdrawal set it was last checked against, so a build scans
    only files staged since, unless someone new has withdrawn (then every file, once)."""
    todo = [d for d in deliveries if _rows_file(d) and d.get("erasure_checked") != digest]
    for cache in Path(staging).glob("*/_current.json"):  # caches made before this withdrawal set
        if json.loads(cache.read_text()).get("erasure") != digest:
            cache.with_suffix(".parquet").unlink(missing_ok=True)
            cache.unlink()
    purged = 0
    if todo and con.sql("SELECT count(*) FROM withdrawn").fetchall()[0][0]:
        hits = con.sql(f"""
            SELECT filename, count(*) FROM read_parquet({_files_sql([_rows_file(d) for d in todo])},
                                                        filename = true, union_by_name = true)
            WHERE pseudonym IS NOT NULL AND sha256(pseudonym) IN (SELECT erasure_token FROM withdrawn)
            GROUP BY filename""").fetchall()
        for filename, n in hits:
            tmp = Path(filename).with_suffix(".purging")
            con.execute(f"""COPY (SELECT * FROM read_parquet('{filename}')
                            WHERE pseudonym IS NULL OR sha256(pseudonym) NOT IN (SELECT erasure_token FROM withdrawn))
                            TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)""")
            os.replace(tmp, filename)
            purged += n
    for d in todo:
        state_path = d["dir"] / "delivery.json"
        state = json.loads(state_path.read_text())
        state["erasure_checked"] = d["erasure_checked"] = digest
        tmp = state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=1, ensure_ascii=False))
        os.replace(tmp, state_path)
    return purged


def _staging_table(con, contract: Contract, files: list[Path], name: str, staging: Path, digest: str) -> None:
    """A temp table of the partner's latest record versions (natural key, latest period wins).

    The latest versions are cached per partner (``_current.parquet``) under a signature of
    the staged files and the withdrawal set: an unchanged partner skips the window over its
    whole history, which is most of an incremental build."""
    cols = staging_columns(contract)
    cache = Path(staging) / contract.partner / "_current.parquet"
    stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(files)]
    signature = hashlib.sha256(json.dumps([stamp, digest, PIPELINE_VERSION, [list(c) for c in cols]]).encode()
                               ).hexdigest()
    meta = cache.with_suffix(".json")
    fresh = meta.exists() and cache.exists() and json.loads(meta.read_text()).get("signature") == signature
    if not fresh:
        con.execute(f"CREATE TEMP TABLE {name}_all ({', '.join(f'{q(n)} {t}' for n, t in cols)})")
        if files:
            con.execute(f"INSERT INTO {name}_all BY NAME SELECT * FROM read_parquet({_files_sql(files)}, "
                        "union_by_name = true)")
        key = ", ".join("pseudonym" if k == contract.identifier else q(contract.column(k).target)
                        for k in contract.natural_key)
        tmp = cache.with_suffix(".parquet.tmp")
        cache.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"""
            COPY (SELECT * EXCLUDE (source_line) FROM {name}_all WHERE pseudonym IS NOT NULL
                  QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY delivery_period DESC, source_line DESC) = 1)
            TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)""")
        con.execute(f"DROP TABLE {name}_all")
        os.replace(tmp, cache)
        meta.write_text(json.dumps({"signature": signature, "erasure": digest}))
    con.execute(f"""CREATE TEMP TABLE {name} AS SELECT * FROM read_parquet('{cache}')
                    WHERE pseudonym NOT IN (SELECT pseudonym FROM excluded)""")


def _comment(con, kind: str, name: str, text: str) -> None:
    con.execute(f"COMMENT ON {kind} {name} IS '{text.replace(chr(39), chr(39) * 2)}'")


def _document(con) -> None:
    docs = yaml.safe_load((HERE / "kb_docs.yaml").read_text())
    for kind, section in (("TABLE", "tables"), ("VIEW", "views")):
        for name, doc in docs[section].items():
            _comment(con, kind, name, doc["about"])
            for column, text in doc["columns"].items():
                _comment(con, "COLUMN", f"{name}.{column}", text)


def sql_files(folder: str) -> list[Path]:
    return sorted((HERE / "sql" / folder).glob("*.sql"))


def build(staging: Path, target: Path, contracts: dict[str, Contract], key_fingerprint: str,
          parameters: dict | None = None, fail_before_swap: bool = False) -> BuildResult:
    """Build the knowledge base from staging into ``target`` atomically."""
    staging, target = Path(staging), Path(target)
    parameters = parameters or load_parameters()
    deliveries = _deliveries(staging)
    fingerprints = {d["loaded"]["key_fingerprint"] for d in deliveries if d.get("loaded")}
    if fingerprints - {key_fingerprint}:
        raise KnowledgeBaseError(
            "staging holds pseudonyms made under another key (fingerprint "
            f"{', '.join(sorted(f[:12] for f in fingerprints - {key_fingerprint}))}); refusing to mix keys: "
            "use the original key file or re-stage into a new data directory")

    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    for leftover in (building, building.with_name(building.name + ".wal")):
        leftover.unlink(missing_ok=True)
    by_partner: dict[str, list[dict]] = {p: [] for p in contracts}
    for d in deliveries:
        if d["partner"] in by_partner:
            by_partner[d["partner"]].append(d)

    con = duckdb.connect(str(building), config={"threads": 2, "memory_limit": MEMORY_LIMIT})
    try:
        # --- consent: the latest loaded snapshot alone is the truth
        consent_partner = next((p for p, c in contracts.items() if c.consent), None)
        snapshots = [d for d in by_partner.get(consent_partner, []) if _rows_file(d)]
        latest = max(snapshots, key=lambda d: d["period"]) if snapshots else None
        if latest:
            c = contracts[consent_partner]
            given = c.column(c.consent["given"]).target
            withdrawn = c.column(c.consent["withdrawn"]).target
            con.execute(f"""
                CREATE TEMP TABLE consent AS
                SELECT erasure_token,
                       arg_max(pseudonym, ({q(given)}, {q(withdrawn)} IS NOT NULL)) AS pseudonym,
                       arg_max({q(withdrawn)} IS NOT NULL, ({q(given)}, {q(withdrawn)} IS NOT NULL)) AS is_withdrawn
                FROM read_parquet('{_rows_file(latest)}') GROUP BY erasure_token""")
        else:
            con.execute("CREATE TEMP TABLE consent (erasure_token VARCHAR, pseudonym VARCHAR, is_withdrawn BOOLEAN)")
        con.execute("CREATE TEMP TABLE withdrawn AS SELECT erasure_token FROM consent WHERE is_withdrawn")

        digest = _token_digest(con)
        purged = _apply_erasure(con, deliveries, staging, digest)

        # --- who is held back: programme clients without consent in force
        programme_files = [f for p, c in contracts.items() if p in ("ttk", "valmennus")
                           for d in by_partner[p] if (f := _rows_file(d))]
        if programme_files:
            con.execute(f"""
                CREATE TEMP TABLE held_back AS
                SELECT DISTINCT pseudonym FROM read_parquet({_files_sql(programme_files)}, union_by_name = true)
                WHERE pseudonym IS NOT NULL
                  AND pseudonym NOT IN (SELECT pseudonym FROM consent WHERE NOT is_withdrawn AND pseudonym IS NOT NULL)""")
        else:
            con.execute("CREATE TEMP TABLE held_back (pseudonym VARCHAR)")
        con.execute("CREATE TEMP TABLE excluded AS SELECT pseudonym FROM held_back")

        for partner, contract in contracts.items():
            if contract.consent:
                continue
            files = [f for d in by_partner[partner] if (f := _rows_file(d))]
            _staging_table(con, contract, files, f"stg_{partner}", staging, digest)

        con.execute("CREATE SCHEMA kb; CREATE SCHEMA ind")
        with timing.stage("kb"):
            for path in sql_files("kb"):
                con.execute(path.read_text())

        # --- deliveries, quarantine, build info, parameters
        con.execute("""CREATE TABLE kb.deliveries (partner VARCHAR, period VARCHAR, file VARCHAR,
            rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, reason VARCHAR,
            previous_version_kept BOOLEAN, rows_in_place BIGINT, content_sha256 VARCHAR, key_fingerprint VARCHAR)""")
        rows = []
        for d in deliveries:
            last, loaded = d["last_attempt"], d.get("loaded")
            kept = last["status"] == "rejected" and loaded is not None
            rows.append((d["partner"], d["period"], last["file"], last["rows_read"], last["rows_loaded"],
                         last["rows_quarantined"], last["status"], last["reason"], kept,
                         loaded["rows_loaded"] if loaded else 0, last["content_sha256"],
                         loaded["key_fingerprint"] if loaded else None))
        if rows:
            con.executemany("INSERT INTO kb.deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        q_files = [d["dir"] / "quarantine.parquet" for d in deliveries
                   if d.get("loaded") and (d["dir"] / "quarantine.parquet").exists()]
        con.execute("CREATE TABLE kb.quarantine (partner VARCHAR, period VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR)")
        if q_files:
            con.execute(f"INSERT INTO kb.quarantine SELECT partner, period, file, line, reason "
                        f"FROM read_parquet({_files_sql(q_files)}) ORDER BY partner, period, line")

        te_periods = [d["period"] for d in by_partner.get("te", []) if d.get("loaded")]
        any_periods = [d["period"] for d in deliveries if d.get("loaded")]
        as_of_period = max(te_periods or any_periods) if (te_periods or any_periods) else None
        as_of = None
        if as_of_period:
            y, m = map(int, as_of_period.split("-"))
            as_of = (dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1))
        con.execute("""CREATE TABLE kb.build_info AS SELECT
                ?::DATE AS as_of, ?::TIMESTAMP AS built_at, ? AS key_fingerprint, ? AS pipeline_version,
                ? AS consent_snapshot_period,
                (SELECT count(*) FROM kb.clients WHERE programme_client) AS programme_clients,
                (SELECT count(*) FROM held_back) AS awaiting_consent,
                (SELECT count(*) FROM withdrawn) AS withdrawn_erased,
                (SELECT count(*) FROM kb.clients WHERE NOT programme_client) AS comparison_population""",
                    [as_of, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), key_fingerprint,
                     PIPELINE_VERSION, latest["period"] if latest else None])
        s, sup = parameters["savings_scenario"], parameters["suppression"]
        con.execute("""CREATE TABLE kb.parameters AS SELECT ?::INTEGER AS long_term_unemployed,
                ?::DOUBLE AS employment_rate, ?::DECIMAL(14, 2) AS municipal_labour_market_subsidy_eur,
                ?::DECIMAL(14, 2) AS social_assistance_eur, ?::INTEGER AS suppression_threshold""",
                    [s["long_term_unemployed"], s["employment_rate"], s["municipal_labour_market_subsidy_eur"],
                     s["social_assistance_eur"], sup["threshold"]])

        with timing.stage("ind"):
            for path in sql_files("ind"):
                con.execute(path.read_text())
            _document(con)
            # check before the swap: every contract view answers
            for view in REQUIRED_VIEWS:
                con.sql(f"SELECT count(*) FROM ind.{view}").fetchall()
        dupes = con.sql("SELECT count(*) - count(DISTINCT pseudonym) FROM kb.clients").fetchall()[0][0]
        if dupes:
            raise KnowledgeBaseError(f"kb.clients has {dupes} duplicate pseudonyms; the build is not swapped in")
        tables = {t: con.sql(f"SELECT count(*) FROM kb.{t}").fetchall()[0][0]
                  for t in KB_TABLES + ["quarantine", "deliveries"]}
        info = con.sql("SELECT programme_clients, awaiting_consent, withdrawn_erased FROM kb.build_info").fetchall()[0]
        if fail_before_swap:
            raise KnowledgeBaseError("injected failure before the swap (test hook)")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        building.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(building, target)
    return BuildResult(target, as_of, tables["clients"], info[0], info[1], info[2], purged, tables)
