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
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from pipelines import regions, timing
from pipelines.limits import duckdb_config
from pipelines.staging import PIPELINE_VERSION
from schemas.casting import lit, q, staging_columns
from schemas.contract import Contract

HERE = Path(__file__).parent
KB_TABLES = ["clients", "episodes", "coaching", "status_spells", "benefits", "measurements"]
REQUIRED_VIEWS = ["employment_outcomes", "coaching_placements", "ttk_process", "pathway_transitions",
                  "measure_change", "cost_savings", "savings_scenario", "data_quality",
                  "impact_estimates", "impact_event_study", "impact_balance"]


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
    carried_forward: list[str]  # kb tables copied from the previous build (their partners unchanged)


def load_parameters(path: str | Path | None = None) -> dict:
    """Plan defaults, overridden key by key from ``path`` when given."""
    params = yaml.safe_load((HERE / "parameters.yaml").read_text())
    if path:
        override = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(override, dict):
            raise KnowledgeBaseError(f"parameters file {path} is not a mapping of sections: "
                                     "see pipelines/parameters.yaml for the format")
        for section, values in override.items():
            if section not in params or not isinstance(values or {}, dict):
                raise KnowledgeBaseError(f"parameters file {path}: unknown section {section!r} (known: "
                                         f"{', '.join(params)}): see pipelines/parameters.yaml for the format")
            for name, value in (values or {}).items():
                if name not in params[section]:
                    raise KnowledgeBaseError(f"parameters file {path}: {section} has no parameter {name!r} "
                                             f"(known: {', '.join(params[section])})")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise KnowledgeBaseError(f"parameters file {path}: {section}.{name} must be a number "
                                             "of 0 or more")
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


def _path_sql(path) -> str:
    return lit(str(path))


def _files_sql(files: list[Path]) -> str:
    return "[" + ", ".join(lit(str(f)) for f in files) + "]"


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
        if _cache_meta(cache).get("erasure") != digest:
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
            con.execute(f"""COPY (SELECT * FROM read_parquet({_path_sql(filename)})
                            WHERE pseudonym IS NULL OR sha256(pseudonym) NOT IN (SELECT erasure_token FROM withdrawn))
                            TO {_path_sql(tmp)} (FORMAT parquet, COMPRESSION zstd)""")
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


def _cache_meta(path: Path) -> dict:
    """A cache's signature file; one cut short by a crash counts as stale."""
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def _current_versions(con, contract: Contract, files: list[Path], staging: Path, digest: str) -> tuple[Path, str]:
    """The partner's latest record versions (natural key, latest period wins) as Parquet.

    Cached per partner (``_current.parquet``) under a signature of the staged files and the
    withdrawal set: an unchanged partner skips the window over its whole history, which is
    most of an incremental build. Returns the file and its signature."""
    cols = staging_columns(contract)
    cache = Path(staging) / contract.partner / "_current.parquet"
    stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(files)]
    signature = hashlib.sha256(json.dumps([stamp, digest, PIPELINE_VERSION, [list(c) for c in cols]]).encode()
                               ).hexdigest()
    meta = cache.with_suffix(".json")
    if meta.exists() and cache.exists() and _cache_meta(meta).get("signature") == signature:
        return cache, signature
    name = f"all_{contract.partner}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({', '.join(f'{q(n)} {t}' for n, t in cols)})")
    if files:
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM read_parquet({_files_sql(files)}, union_by_name = true)")
    key = ", ".join("pseudonym" if k == contract.identifier else q(contract.column(k).target)
                    for k in contract.natural_key)
    tmp = cache.with_suffix(".parquet.tmp")
    cache.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"""
        COPY (SELECT * EXCLUDE (source_line) FROM {name} WHERE pseudonym IS NOT NULL
              QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY delivery_period DESC, source_line DESC) = 1)
        TO {_path_sql(tmp)} (FORMAT parquet, COMPRESSION zstd)""")
    con.execute(f"DROP TABLE {name}")
    os.replace(tmp, cache)
    tmp_meta = meta.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps({"signature": signature, "erasure": digest}))
    os.replace(tmp_meta, meta)
    return cache, signature


def contract_views_answer(con: duckdb.DuckDBPyConnection) -> dict[str, int | None]:
    """Rows of every view of the evaluators' contract; None where a view does not answer."""
    answers: dict[str, int | None] = {}
    for view in REQUIRED_VIEWS:
        try:
            answers[view] = con.sql(f"SELECT count(*) FROM ind.{view}").fetchall()[0][0]
        except duckdb.Error:
            answers[view] = None
    return answers


def _stage_of(name: str) -> str:
    """The benchmark's stage of an ind object: the impact comparison is timed on its own."""
    return "impact" if name.startswith("impact_") else "ind"


def _comment(con, kind: str, name: str, text: str) -> None:
    con.execute(f"COMMENT ON {kind} {name} IS '{text.replace(chr(39), chr(39) * 2)}'")


def _document(con) -> None:
    docs = yaml.safe_load((HERE / "kb_docs.yaml").read_text())
    for kind, section in (("TABLE", "tables"), ("VIEW", "views")):
        for name, doc in docs[section].items():
            _comment(con, kind, name, doc["about"])
            for column, text in doc["columns"].items():
                _comment(con, "COLUMN", f"{name}.{column}", text)


DEPENDS = re.compile(r"^--\s*depends:\s*(.+)$", re.MULTILINE)


def sql_files(folder: str) -> list[Path]:
    """The folder's SQL files in an order that creates every object after what it reads.

    A file names what it reads from its own folder in a header line
    ``-- depends: ind.a, ind.b``; otherwise files run in name order."""
    files = {p.stem: p for p in sorted((HERE / "sql" / folder).glob("*.sql"))}
    needs = {}
    for stem, path in files.items():
        names = [n.strip() for m in DEPENDS.findall(path.read_text()) for n in m.split(",")]
        needs[stem] = [n.split(".")[-1] for n in names if n.startswith(f"{folder}.")]
        if missing := [n for n in needs[stem] if n not in files]:
            raise KnowledgeBaseError(f"{path.name} depends on {', '.join(missing)}, which no SQL file makes")
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(stem: str) -> None:
        if stem in ordered:
            return
        if stem in visiting:
            raise KnowledgeBaseError(f"SQL files depend on each other in a cycle through {stem}.sql")
        visiting.add(stem)
        for dep in needs[stem]:
            visit(dep)
        ordered.append(stem)

    for stem in files:
        visit(stem)
    return [files[s] for s in ordered]


#: which partners each knowledge-base table is made from (a table whose partners are all
#: unchanged is carried forward from the previous build instead of being made again)
TABLE_SOURCES = {"clients": None, "episodes": {"ttk", "valmennus", "typ", "kunta"}, "coaching": {"valmennus"},
                 "status_spells": {"te"}, "benefits": {"kela"}, "measurements": {"mittarit"}}


def _previous_inputs(target: Path, key_fingerprint: str, exclusion: str) -> dict[str, str] | None:
    """The partner signatures of the previous build, if it can be carried forward."""
    if not target.exists():
        return None
    try:
        with duckdb.connect(str(target), read_only=True) as prev:
            info = prev.sql("SELECT key_fingerprint, pipeline_version, exclusion_digest FROM kb.build_info").fetchall()
            if info != [(key_fingerprint, PIPELINE_VERSION, exclusion)]:
                return None
            return dict(prev.sql("SELECT partner, signature FROM kb.build_inputs").fetchall())
    except duckdb.Error:
        return None


def build(staging: Path, target: Path, contracts: dict[str, Contract], key_fingerprint: str,
          parameters: dict | None = None, fail_before_swap: bool = False, landing_scan: tuple | None = None
          ) -> BuildResult:
    """Build the knowledge base from staging into ``target`` atomically.

    ``landing_scan`` is ``(deliveries, ignored)`` of the landing zone now: it marks which
    loaded deliveries are no longer there and lists what the landing zone holds that is
    not a delivery (unknown when not given)."""
    staging, target = Path(staging), Path(target)
    parameters = parameters or load_parameters()
    deliveries = _deliveries(staging)
    fingerprints = {d["loaded"]["key_fingerprint"] for d in deliveries if d.get("loaded")}
    if fingerprints - {key_fingerprint}:
        raise KnowledgeBaseError(
            "staging holds pseudonyms made under another key (fingerprint "
            f"{', '.join(sorted(f[:12] for f in fingerprints - {key_fingerprint}))}); refusing to mix keys: "
            "use the original key file or re-stage into a new data directory")
    by_partner: dict[str, list[dict]] = {p: [] for p in contracts}
    for d in deliveries:
        if d["partner"] in by_partner:
            by_partner[d["partner"]].append(d)

    # --- consent (the latest loaded snapshot alone is the truth), erasure, who is held back
    work = duckdb.connect(config=duckdb_config())
    try:
        consent_partner = next((p for p, c in contracts.items() if c.consent), None)
        snapshots = [d for d in by_partner.get(consent_partner, []) if _rows_file(d)]
        latest = max(snapshots, key=lambda d: d["period"]) if snapshots else None
        if latest:
            c = contracts[consent_partner]
            given = c.column(c.consent["given"]).target
            withdrawn = c.column(c.consent["withdrawn"]).target
            work.execute(f"""
                CREATE TEMP TABLE consent AS
                SELECT erasure_token,
                       arg_max(pseudonym, ({q(given)}, {q(withdrawn)} IS NOT NULL)) AS pseudonym,
                       arg_max({q(withdrawn)} IS NOT NULL, ({q(given)}, {q(withdrawn)} IS NOT NULL)) AS is_withdrawn
                FROM read_parquet({_path_sql(_rows_file(latest))}) GROUP BY erasure_token""")
        else:
            work.execute("CREATE TEMP TABLE consent (erasure_token VARCHAR, pseudonym VARCHAR, is_withdrawn BOOLEAN)")
        work.execute("CREATE TEMP TABLE withdrawn AS SELECT erasure_token FROM consent WHERE is_withdrawn")
        digest = _token_digest(work)
        purged = _apply_erasure(work, deliveries, staging, digest)
        programme_files = [f for p in ("ttk", "valmennus") for d in by_partner.get(p, []) if (f := _rows_file(d))]
        work.execute("CREATE TEMP TABLE held_back (pseudonym VARCHAR)")
        if programme_files:
            work.execute(f"""
                INSERT INTO held_back
                SELECT DISTINCT pseudonym FROM read_parquet({_files_sql(programme_files)}, union_by_name = true)
                WHERE pseudonym IS NOT NULL
                  AND pseudonym NOT IN (SELECT pseudonym FROM consent WHERE NOT is_withdrawn AND pseudonym IS NOT NULL)""")
        held_back = work.sql("SELECT pseudonym FROM held_back ORDER BY pseudonym").to_arrow_table()
        withdrawn_count = work.sql("SELECT count(*) FROM withdrawn").fetchall()[0][0]
        current = {p: _current_versions(work, c, [f for d in by_partner[p] if (f := _rows_file(d))], staging, digest)
                   for p, c in contracts.items() if not c.consent}
    finally:
        work.close()
    exclusion = hashlib.sha256((digest + "|" + ",".join(held_back.column(0).to_pylist())).encode()).hexdigest()
    signatures = {p: sig for p, (_, sig) in current.items()}
    previous = _previous_inputs(target, key_fingerprint, exclusion)
    carried = {t for t, sources in TABLE_SOURCES.items()
               if previous is not None and sources is not None and all(previous.get(p) == signatures[p] for p in sources)}

    # --- build into a new file: a copy of the previous one when tables can be carried forward
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    for leftover in (building, building.with_name(building.name + ".wal")):
        leftover.unlink(missing_ok=True)
    if carried:
        shutil.copyfile(target, building)
    con = duckdb.connect(str(building), config=duckdb_config())
    try:
        con.register("held_back_rows", held_back)
        con.execute("CREATE TEMP TABLE excluded AS SELECT pseudonym FROM held_back_rows")
        for partner, (cache, _) in current.items():
            con.execute(f"""CREATE TEMP VIEW stg_{partner} AS SELECT * FROM read_parquet({_path_sql(cache)})
                            WHERE pseudonym NOT IN (SELECT pseudonym FROM excluded)""")
        if carried:
            con.execute("DROP SCHEMA ind CASCADE")
            for table in ["deliveries", "quarantine", "build_info", "parameters", "build_inputs", "landing_ignored",
                          *(t for t in TABLE_SOURCES if t not in carried)]:
                con.execute(f"DROP TABLE IF EXISTS kb.{table}")
            con.execute("CREATE SCHEMA ind")
        else:
            con.execute("CREATE SCHEMA kb; CREATE SCHEMA ind")
        with timing.stage("kb"):
            for path in sql_files("kb"):
                if path.stem not in carried:
                    con.execute(path.read_text())

        # --- deliveries, quarantine, build info, parameters
        con.execute("""CREATE TABLE kb.deliveries (partner VARCHAR, period VARCHAR, file VARCHAR,
            rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, reason VARCHAR,
            previous_version_kept BOOLEAN, rows_in_place BIGINT, content_sha256 VARCHAR, key_fingerprint VARCHAR,
            codes_redacted_in_names BIGINT, codes_redacted_in_values BIGINT, in_landing_zone BOOLEAN)""")
        present = {(d.partner, d.period) for d in landing_scan[0]} if landing_scan else None
        rows = []
        for d in deliveries:
            last, loaded = d["last_attempt"], d.get("loaded")
            kept = last["status"] == "rejected" and loaded is not None
            rows.append((d["partner"], d["period"], last["file"], last["rows_read"], last["rows_loaded"],
                         last["rows_quarantined"], last["status"], last["reason"], kept,
                         loaded["rows_loaded"] if loaded else 0, last["content_sha256"],
                         loaded["key_fingerprint"] if loaded else None, last.get("codes_redacted_in_names", 0),
                         last.get("codes_redacted_in_values", 0),
                         None if present is None else (d["partner"], d["period"]) in present))
        if rows:
            con.executemany(f"INSERT INTO kb.deliveries VALUES ({', '.join(['?'] * 15)})", rows)
        con.execute("CREATE TABLE kb.landing_ignored (path VARCHAR, reason VARCHAR, codes_redacted BIGINT)")
        ignored = [(i.path, i.reason, i.codes_redacted) for i in landing_scan[1]] if landing_scan else []
        if ignored:
            con.executemany("INSERT INTO kb.landing_ignored VALUES (?, ?, ?)", ignored)
        q_files = [d["dir"] / "quarantine.parquet" for d in deliveries
                   if d.get("loaded") and (d["dir"] / "quarantine.parquet").exists()]
        con.execute("CREATE TABLE kb.quarantine (partner VARCHAR, period VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR)")
        if q_files:
            con.execute(f"INSERT INTO kb.quarantine SELECT partner, period, file, line, reason "
                        f"FROM read_parquet({_files_sql(q_files)}) ORDER BY partner, period, line")
        con.execute("CREATE TABLE kb.build_inputs (partner VARCHAR, signature VARCHAR)")
        con.executemany("INSERT INTO kb.build_inputs VALUES (?, ?)", sorted(signatures.items()))

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
                ?::BIGINT AS awaiting_consent, ?::BIGINT AS withdrawn_erased,
                (SELECT count(*) FROM kb.clients WHERE NOT programme_client) AS comparison_population,
                ? AS exclusion_digest""",
                    [as_of, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), key_fingerprint,
                     PIPELINE_VERSION, latest["period"] if latest else None, held_back.num_rows, withdrawn_count,
                     exclusion])
        s, sup = parameters["savings_scenario"], parameters["suppression"]
        con.execute("""CREATE TABLE kb.parameters AS SELECT ?::INTEGER AS long_term_unemployed,
                ?::DOUBLE AS employment_rate, ?::DECIMAL(14, 2) AS municipal_labour_market_subsidy_eur,
                ?::DECIMAL(14, 2) AS social_assistance_eur, ?::INTEGER AS suppression_threshold,
                ?::INTEGER AS rounding_base, ?::INTEGER AS midpoint_rounding""",
                    [s["long_term_unemployed"], s["employment_rate"], s["municipal_labour_market_subsidy_eur"],
                     s["social_assistance_eur"], sup["threshold"], sup["rounding_base"], sup["midpoint_rounding"]])
        regions.write_kb_tables(con, target.parent)  # kb.region, kb.municipalities (DATA/region.json)

        for path in sql_files("ind"):
            with timing.stage(_stage_of(path.stem)):
                con.execute(path.read_text())
        with timing.stage("ind"):
            _document(con)
        for view in REQUIRED_VIEWS:  # check before the swap: every contract view answers
            with timing.stage(_stage_of(view)):
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
    return BuildResult(target, as_of, tables["clients"], info[0], info[1], info[2], purged, tables,
                       sorted(carried))
