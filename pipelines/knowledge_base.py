"""Build the DuckDB knowledge base (schemas ``kb`` and ``ind``) from staging.

The steps of :func:`build`, in order:

1. :func:`prepare` — refuse staging that mixes key fingerprints; apply the latest consent
   snapshot (withdrawn persons purged from every staging file first, programme clients
   without consent held back); each partner's latest record versions;
2. :func:`carried_tables` — which kb tables the previous build can give unchanged (and the
   by-partner ones it can give but for their changed partners' rows);
3. a *new* file (a copy of the previous one when tables are carried forward);
4. the kb tables (sql/kb); 5. the ledger of deliveries and quarantine; 6. build info,
   parameters and the region; 7. the indicators (sql/ind);
8. :func:`check_before_swap` and :func:`views_answer_as_opened`, and only then the swap with
   one rename, so evaluators never see a half-built database and a failed build leaves the
   previous one untouched; the views' answers are kept beside it for the report
   (:mod:`pipelines.view_answers`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from pipelines import consent, impact, regions, timing, view_answers
from pipelines.limits import connect
from pipelines.staging import PIPELINE_VERSION, delivery_states, other_keys, rows_file, write_state
from schemas.casting import lit, q, staging_columns
from schemas.contract import Contract, with_role

HERE = Path(__file__).parent
KB_TABLES = ["clients", "person_sources", "episodes", "coaching", "status_spells", "benefits", "measurements"]
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
    views: dict[str, int]       # rows of each view of the evaluators' contract, on the file swapped in
    refreshed: dict[str, list[str]]  # by-partner kb tables carried forward but for these partners' rows
    refreshed_by_person: dict[str, list[str]]  # kb tables carried forward but for the rows of the persons
                                               # in these partners' new deliveries
    persons_refreshed: int           # the persons in those new deliveries
    matching: impact.MatchingQuality  # of the impact comparison, read with the views above


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


def _path_sql(path) -> str:
    return lit(str(path))


def _files_sql(files: list[Path]) -> str:
    return "[" + ", ".join(lit(str(f)) for f in files) + "]"


def _apply_erasure(con: duckdb.DuckDBPyConnection, deliveries: list[dict], staging: Path, digest: str) -> int:
    """Remove the withdrawn persons' rows from every staging file that holds any.

    A delivery remembers the withdrawal set it was last checked against, so a build scans
    only files staged since, unless someone new has withdrawn (then every file, once)."""
    todo = [d for d in deliveries if rows_file(d) and d.get("erasure_checked") != digest]
    for cache in Path(staging).glob("*/_superseded.json"):  # caches made before this withdrawal set
        if _cache_meta(cache).get("erasure") != digest:
            cache.with_suffix(".parquet").unlink(missing_ok=True)
            cache.unlink()
    for old in Path(staging).glob("*/_current.*"):  # the cache of earlier versions: whole copies of the rows
        old.unlink()
    purged = 0
    if todo and con.sql("SELECT count(*) FROM withdrawn").fetchall()[0][0]:
        files = _files_sql([rows_file(d) for d in todo])
        # a withdrawn person is known by sha256(pseudonym): hash each distinct pseudonym once, not each row
        con.execute(f"""CREATE OR REPLACE TEMP TABLE erase AS
            SELECT pseudonym FROM (SELECT DISTINCT pseudonym FROM read_parquet({files}, union_by_name = true)
                                   WHERE pseudonym IS NOT NULL)
            WHERE sha256(pseudonym) IN (SELECT erasure_token FROM withdrawn)""")
        hits = con.sql(f"""
            SELECT filename, count(*) FROM read_parquet({files}, filename = true, union_by_name = true)
            WHERE pseudonym IN (SELECT pseudonym FROM erase) GROUP BY filename""").fetchall()
        for filename, n in hits:
            tmp = Path(filename).with_suffix(".purging")
            con.execute(f"""COPY (SELECT * FROM read_parquet({_path_sql(filename)})
                            WHERE pseudonym IS NULL OR pseudonym NOT IN (SELECT pseudonym FROM erase))
                            TO {_path_sql(tmp)} (FORMAT parquet, COMPRESSION zstd)""")
            os.replace(tmp, filename)
            purged += n
    for d in todo:
        d["erasure_checked"] = digest
        write_state(d["dir"], d)
    return purged


def _cache_meta(path: Path) -> dict:
    """A cache's signature file; one cut short by a crash counts as stale."""
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


@dataclass
class Latest:
    """A partner's latest record versions: its staged files less the rows a later version of
    the same natural key supersedes (listed by file and line in ``superseded``)."""

    files: list[Path]
    superseded: Path
    columns: list[tuple[str, str]]   # (name, DuckDB type) of the staged rows, as the contract says
    present: set[str]                # the columns some staged file has (others read as NULL)
    # when these versions only add later periods to earlier ones: (the earlier versions' signature,
    # the files added). A natural key holds the identity code, so only the persons in the added
    # files have other latest versions than before.
    appended: tuple[str, list[Path]] | None = None

    def select_sql(self) -> str:
        """The latest versions, typed as the contract says (also when no file exists yet)."""
        typed = ", ".join(f"CAST(r.{q(n)} AS {t}) AS {q(n)}" if n in self.present else f"NULL::{t} AS {q(n)}"
                          for n, t in self.columns if n != "source_line")
        if not self.files:
            return f"SELECT {typed} FROM (SELECT 1) r WHERE false"
        return f"""SELECT {typed} FROM read_parquet({_files_sql(self.files)}, union_by_name = true, filename = true) r
                   ANTI JOIN read_parquet({_path_sql(self.superseded)}) s
                     ON r.filename = s.file AND r.source_line = s.line
                   WHERE r.pseudonym IS NOT NULL"""


def _latest_versions(con, contract: Contract, files: list[Path], staging: Path, digest: str) -> tuple[Latest, str]:
    """The partner's latest record versions (natural key, latest period wins, then latest line).

    Most keys are delivered once, so the files are read as they are and only the rows that a
    later version supersedes are listed (``_superseded.parquet``: file and line, nothing about
    a person). Cached per partner under a signature of the staged files and the withdrawal
    set: an unchanged partner costs nothing in an incremental build. Returns it and the signature."""
    cols = staging_columns(contract)
    files = sorted(files)
    folder = Path(staging) / contract.partner
    superseded = folder / "_superseded.parquet"
    stamp = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    signature = hashlib.sha256(json.dumps([stamp, digest, PIPELINE_VERSION, [list(c) for c in cols]]).encode()
                               ).hexdigest()
    present = {r[0] for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet({_files_sql(files)}, "
                                     "union_by_name = true)").fetchall()} if files else set()
    latest = Latest(files, superseded, cols, present)
    meta = superseded.with_suffix(".json")
    cached = _cache_meta(meta) if meta.exists() and superseded.exists() else {}
    if cached.get("signature") == signature:
        return latest, signature
    keys = contract.key_columns()
    key = ", ".join(q(k) for k in keys)
    tmp = superseded.with_suffix(".parquet.tmp")
    folder.mkdir(parents=True, exist_ok=True)
    base = [PIPELINE_VERSION, [list(c) for c in cols]]
    rows = "(SELECT NULL::VARCHAR AS file, NULL::BIGINT AS line WHERE false)"
    if (added := _appended(cached, stamp, digest, base)) is not None:
        latest.appended = (cached["signature"], [Path(f) for f in added])
        # only new periods, later than every cached one (a monthly delivery): the list so far, of
        # each key the new files deliver again the earlier files' latest version (the only one of
        # its earlier versions not listed yet), and what the new files supersede among themselves.
        # The three are disjoint: no list is deduplicated (that took 0.8 of 1.4 s for a TE month
        # at 1 M persons). Reads the earlier files' keys, windows only the keys delivered again.
        earlier = [s[0] for s in cached["stamp"]]
        same_key = " AND ".join(f"o.{q(k)} IS NOT DISTINCT FROM n.{q(k)}" for k in keys)
        rows = f"""(
            WITH new AS (SELECT filename AS file, source_line AS line, delivery_period, {key}
                         FROM read_parquet({_files_sql(added)}, union_by_name = true, filename = true)
                         WHERE pseudonym IS NOT NULL)
            SELECT file, line FROM read_parquet({_path_sql(superseded)})
            UNION ALL
            SELECT o.filename, o.source_line
            FROM read_parquet({_files_sql(earlier)}, union_by_name = true, filename = true) o
            SEMI JOIN new n ON {same_key}
            WHERE o.pseudonym IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY o.delivery_period DESC, o.source_line DESC) = 1
            UNION ALL
            SELECT file, line FROM new
            QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY delivery_period DESC, line DESC) > 1)"""
    elif files:  # a hash finds the keys delivered more than once (a collision only sends more rows to the window)
        rows = f"""(
            WITH rows AS NOT MATERIALIZED (SELECT filename AS file, source_line AS line, delivery_period, {key}, hash({key}) AS _key
                          FROM read_parquet({_files_sql(files)}, union_by_name = true, filename = true)
                          WHERE pseudonym IS NOT NULL)
            SELECT file, line FROM rows WHERE _key IN (SELECT _key FROM rows GROUP BY _key HAVING count(*) > 1)
            QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY delivery_period DESC, line DESC) > 1)"""
    con.execute(f"COPY {rows} TO {_path_sql(tmp)} (FORMAT parquet, COMPRESSION zstd)")
    meta.unlink(missing_ok=True)  # a list without its signature is made anew: a crash or a full disk
    os.replace(tmp, superseded)   # between the two writes never pairs the new list with the old files
    tmp_meta = meta.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps({"signature": signature, "erasure": digest, "base": base, "stamp": stamp}))
    os.replace(tmp_meta, meta)
    return latest, signature


def _appended(cached: dict, stamp: list, digest: str, base: list) -> list[str] | None:
    """The staged files added since the cached superseded list was made, if that is all that
    changed and each is of a later period than every cached file (a new monthly delivery);
    None when the list must be made anew (a re-delivered or purged period, a backfilled earlier
    period, another withdrawal set, other staging columns)."""
    old = {tuple(s) for s in cached.get("stamp") or []}
    if not old or cached.get("erasure") != digest or cached.get("base") != base:
        return None
    now = [tuple(s) for s in stamp]
    if not old <= set(now):
        return None
    added = [s[0] for s in now if s not in old]
    if not added or min(Path(f).parent.name for f in added) <= max(Path(s[0]).parent.name for s in old):
        return None
    return added


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


def depends_on(path: Path, folder: str) -> list[str]:
    """What a SQL file reads from its own folder, from its ``-- depends:`` header lines."""
    names = [n.strip() for m in DEPENDS.findall(path.read_text()) for n in m.split(",")]
    return [n.split(".")[-1] for n in names if n.startswith(f"{folder}.")]


def sql_files(folder: str) -> list[Path]:
    """The folder's SQL files in an order that creates every object after what it reads.

    A file names what it reads from its own folder in a header line
    ``-- depends: ind.a, ind.b``; otherwise files run in name order."""
    files = {p.stem: p for p in sorted((HERE / "sql" / folder).glob("*.sql"))}
    needs = {}
    for stem, path in files.items():
        needs[stem] = depends_on(path, folder)
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


STAGING_VIEW = re.compile(r"\bstg_([a-z0-9_]+)")
REFRESH = re.compile(r"^--\s*refresh:(.*)$", re.MULTILINE)
REFRESH_KINDS = {"by partner", "by person"}
CREATE_AS = re.compile(r"^CREATE TABLE (kb\.[a-z0-9_]+) AS\s", re.MULTILINE)


def table_sources(contracts: dict[str, Contract]) -> dict[str, set[str]]:
    """Which partners each kb table is made from: the staging views (``stg_<partner>``) its SQL
    reads, and those of the kb tables it depends on. A table whose partners are all unchanged is
    carried forward from the previous build."""
    sources: dict[str, set[str]] = {}
    for path in sql_files("kb"):  # dependencies first
        found = set(STAGING_VIEW.findall(path.read_text()))
        if unknown := found - set(contracts):
            raise KnowledgeBaseError(f"{path.name} reads staging of unknown partner(s) {', '.join(sorted(unknown))}")
        sources[path.stem] = found.union(*(sources[d] for d in depends_on(path, "kb")))
    return sources


def refresh_kinds(path: Path) -> set[str]:
    """How a kb table may be made again in part, from its ``-- refresh: by partner, by person`` line."""
    kinds = {k.strip() for m in REFRESH.findall(path.read_text()) for k in m.split(",")}
    if unknown := kinds - REFRESH_KINDS:
        raise KnowledgeBaseError(f"{path.name}: unknown refresh {', '.join(sorted(unknown))!r} "
                                 f"(known: {', '.join(sorted(REFRESH_KINDS))})")
    return kinds


def by_partner(path: Path) -> bool:
    """A kb table with a ``partner`` column whose SQL says ``-- refresh: by partner``: when some of
    its partners change, only their rows are made again (the others' are carried forward)."""
    return "by partner" in refresh_kinds(path)


def by_person(path: Path) -> bool:
    """A kb table whose SQL says ``-- refresh: by person``: a person's rows are made of that
    person's records only, so when its changed partners only added later periods (a monthly
    delivery), only the rows of the persons in those partners' new files are made again."""
    return "by person" in refresh_kinds(path)


def sql_digest(folder: str) -> str:
    """Identifies the SQL of a folder: a kb table made by other SQL is never carried forward, and
    impact units made by other ind SQL are never kept."""
    return hashlib.sha256("".join(f"{p.name}\n{p.read_text()}" for p in sql_files(folder)).encode()).hexdigest()


@dataclass
class Previous:
    """What a previous build that can be carried forward gives this one."""

    signatures: dict[str, str]   # partner -> signature of its staged inputs
    tables: set[str]             # its kb tables
    ind_sql: str                 # the digest of its ind SQL


def _previous_inputs(target: Path, key_fingerprint: str, exclusion: str, kb_sql: str) -> Previous | None:
    """The previous build, if it can be carried forward (same key, pipeline, exclusions and kb SQL;
    a file of an older build without them cannot)."""
    if not target.exists():
        return None
    try:
        with duckdb.connect(str(target), read_only=True) as prev:
            info = prev.sql("SELECT key_fingerprint, pipeline_version, exclusion_digest, kb_sql_sha256, "
                            "ind_sql_sha256 FROM kb.build_info").fetchall()
            if len(info) != 1 or info[0][:4] != (key_fingerprint, PIPELINE_VERSION, exclusion, kb_sql):
                return None
            tables = {t for (t,) in prev.sql("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = 'kb'").fetchall()}
            return Previous(dict(prev.sql("SELECT partner, signature FROM kb.build_inputs").fetchall()), tables,
                            info[0][4])
    except duckdb.Error:
        return None


@dataclass
class Prepared:
    """What staging gives one build, after consent: each partner's latest record versions."""

    deliveries: list[dict]
    by_partner: dict[str, list[dict]]
    consent_period: str | None       # the consent snapshot in force
    held_back: pa.Table              # programme clients without consent in force (pseudonym)
    withdrawn: int
    purged_rows: int
    current: dict[str, tuple[Latest, str]]   # partner -> (latest versions, signature)
    exclusion: str                   # identifies who is withdrawn or held back

    @property
    def signatures(self) -> dict[str, str]:
        return {p: sig for p, (_, sig) in self.current.items()}


def _refuse_other_keys(deliveries: list[dict], key_fingerprint: str) -> None:
    if shown := other_keys({d["loaded"]["key_fingerprint"] for d in deliveries if d.get("loaded")}, key_fingerprint):
        raise KnowledgeBaseError(f"staging holds pseudonyms made under another key (fingerprint {shown}); refusing "
                                 "to mix keys: use the original key file or re-stage into a new data directory")


def _held_back(work, contracts: dict[str, Contract], by_partner: dict[str, list[dict]]) -> pa.Table:
    """Programme clients (partners with role ``programme``) without consent in force."""
    programme_files = [f for p in with_role(contracts, "programme") for d in by_partner.get(p, [])
                       if (f := rows_file(d))]
    work.execute("CREATE TEMP TABLE held_back (pseudonym VARCHAR)")
    if programme_files:
        work.execute(f"""
            INSERT INTO held_back
            SELECT DISTINCT pseudonym FROM read_parquet({_files_sql(programme_files)}, union_by_name = true)
            WHERE pseudonym IS NOT NULL
              AND pseudonym NOT IN (SELECT pseudonym FROM consent WHERE NOT is_withdrawn AND pseudonym IS NOT NULL)""")
    return work.sql("SELECT pseudonym FROM held_back ORDER BY pseudonym").to_arrow_table()


def prepare(staging: Path, contracts: dict[str, Contract], key_fingerprint: str) -> Prepared:
    """Step 1: refuse mixed keys, apply consent (withdrawn persons purged from staging, programme
    clients without consent held back) and find each partner's latest record versions."""
    deliveries = delivery_states(staging)
    _refuse_other_keys(deliveries, key_fingerprint)
    by_partner: dict[str, list[dict]] = {p: [] for p in contracts}
    for d in deliveries:
        if d["partner"] in by_partner:
            by_partner[d["partner"]].append(d)
    work = connect()
    try:
        latest = consent.load(work, contracts, deliveries)
        digest = consent.digest(work)
        purged = _apply_erasure(work, deliveries, staging, digest)
        held_back = _held_back(work, contracts, by_partner)
        withdrawn = work.sql("SELECT count(*) FROM withdrawn").fetchall()[0][0]
        current = {p: _latest_versions(work, c, [f for d in by_partner[p] if (f := rows_file(d))], staging,
                                       digest)
                   for p, c in contracts.items() if not c.consent}
    finally:
        work.close()
    exclusion = hashlib.sha256((digest + "|" + ",".join(held_back.column(0).to_pylist())).encode()).hexdigest()
    return Prepared(deliveries, by_partner, latest["period"] if latest else None, held_back, withdrawn, purged,
                    current, exclusion)


@dataclass
class Carried:
    """What the previous build gives this one: whole kb tables, by-partner tables but for the
    rows of their changed partners, by-person tables but for the rows of the persons in new
    deliveries (made again), and whether its impact units are kept (made by the same ind SQL:
    ind/impact_units.sql keeps those of persons whose inputs are unchanged)."""

    tables: set[str]
    refresh: dict[str, set[str]]   # by-partner table -> partners whose rows are made again
    persons: dict[str, set[str]] = field(default_factory=dict)  # by-person table -> its changed partners
    added: dict[str, list[Path]] = field(default_factory=dict)  # partner -> its new files (whose persons are made again)
    impact_units: bool = False

    @property
    def kept(self) -> set[str]:
        return self.tables | set(self.refresh) | set(self.persons)


def carried_tables(target: Path, key_fingerprint: str, prep: Prepared, contracts: dict[str, Contract],
                   kb_sql: str, ind_sql: str) -> Carried:
    """Step 2: the kb tables the previous build can give as they are (same key, pipeline, kb SQL and
    exclusions, and every partner they are made from unchanged), the by-person tables it can give
    but for the persons in new deliveries (when their changed partners only added later periods
    to what it was built from), and the by-partner tables it can give but for their changed
    partners' rows."""
    previous = _previous_inputs(target, key_fingerprint, prep.exclusion, kb_sql)
    if previous is None:
        return Carried(set(), {})
    sources = table_sources(contracts)
    carried = Carried(set(), {}, impact_units=previous.ind_sql == ind_sql)
    added = {p: latest.appended[1] for p, (latest, _) in prep.current.items()
             if latest.appended and latest.appended[0] == previous.signatures.get(p)}
    for path in sql_files("kb"):
        if path.stem not in previous.tables:
            continue
        changed = {p for p in sources[path.stem] if previous.signatures.get(p) != prep.signatures[p]}
        if not changed:
            carried.tables.add(path.stem)
        elif by_person(path) and changed <= set(added):
            carried.persons[path.stem] = changed
        elif by_partner(path):
            carried.refresh[path.stem] = changed
    carried.added = {p: added[p] for p in set().union(*carried.persons.values())}
    return carried


KEPT_IND_TABLES = ("impact_units", "impact_unit_inputs")  # ind/impact_units.sql maintains them


class _EarlyCopy:
    """The previous file copied to the new file's name in a background thread while steps 1 and 2
    run (a copy is in-kernel file I/O, and finding the latest versions is DuckDB's work): at 1 M
    persons the copy of 0.8 GB took 0.9–1.8 s after them. Step 3 takes it when tables are carried
    forward, and removes it when none are."""

    def __init__(self, source: Path, dest: Path):
        self.dest, self.error = dest, None
        self.thread = threading.Thread(target=self._copy, args=(source, dest), name="kb-copy", daemon=True)
        self.thread.start()

    def _copy(self, source: Path, dest: Path) -> None:
        try:
            shutil.copyfile(source, dest)
        except BaseException as e:  # raised where the copy is taken
            self.error = e

    def take(self) -> Path:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.dest

    def discard(self) -> None:
        self.thread.join()
        self.dest.unlink(missing_ok=True)


def _start_new_file(target: Path) -> tuple[Path, _EarlyCopy | None]:
    """The new file's name beside the target, freed of what a stopped build left, and the copy of
    the previous file started (when there is one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    for leftover in (building, building.with_name(building.name + ".wal")):
        leftover.unlink(missing_ok=True)
    return building, _EarlyCopy(target, building) if target.exists() else None


def _open_new_file(building: Path, copy: _EarlyCopy | None, carried: Carried) -> duckdb.DuckDBPyConnection:
    """Step 3: the new database file beside the target; the copy of the previous one when
    tables are carried forward (everything else in it is dropped, but for the impact units
    when they are kept)."""
    if not carried.kept:
        if copy is not None:
            copy.discard()
        con = connect(str(building))
        con.execute("CREATE SCHEMA kb; CREATE SCHEMA ind")
        return con
    con = connect(str(copy.take()))
    kept = {f"kb.{t}" for t in carried.kept}
    if carried.impact_units:
        kept |= {f"ind.{t}" for t in KEPT_IND_TABLES}
    for (name,) in con.sql("SELECT 'ind.' || view_name FROM duckdb_views() WHERE schema_name = 'ind'").fetchall():
        con.execute(f"DROP VIEW {name}")
    for (name,) in con.sql("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                           "WHERE table_schema IN ('kb', 'ind') AND table_type = 'BASE TABLE'").fetchall():
        if name not in kept:
            con.execute(f"DROP TABLE {name}")
    return con


def _refresh(con, path: Path, partners: set[str], persons: bool = False) -> None:
    """Make some rows of a table again, the others stay as carried: those of ``partners`` of a
    by-partner table (the filter on the partner column leaves the other partners' staging
    unread), and with ``persons`` only those of the persons in these partners' new deliveries
    (``touched``)."""
    text = path.read_text()
    if not (table := CREATE_AS.search(text)):
        raise KnowledgeBaseError(f"{path.name} is refreshed in part but has no 'CREATE TABLE kb.<name> AS' line")
    select = text[table.end():].strip().rstrip(";")
    names = ", ".join(lit(p) for p in sorted(partners))
    rows = []
    if by_partner(path):
        rows.append(f"partner IN ({names})")
    if persons:
        rows.append(f"pseudonym IN (SELECT pseudonym FROM touched WHERE partner IN ({names}))")
    where = " AND ".join(rows)
    con.execute(f"DELETE FROM {table.group(1)} WHERE {where}")
    con.execute(f"INSERT INTO {table.group(1)} SELECT * FROM ({select}) WHERE {where}")


@contextmanager
def _touched_rows_only(con, staged: dict[str, str], partners: set[str], narrowed: set[str]):
    """While a table is made again for the touched persons, the staging views of its changed
    ``partners`` hold only those persons' rows: read from staging once per build (``narrowed``: the
    partners whose rows are read already), not once per table (at 1 M persons each reading of TE's
    twelve million rows took a second). A person's rows are made of that person's records only
    (what ``-- refresh: by person`` says), so the rows made are the same."""
    for partner in sorted(partners - narrowed):
        con.execute(f"""CREATE TEMP TABLE touched_stg_{partner} AS SELECT * FROM stg_{partner}
                        WHERE pseudonym IN (SELECT pseudonym FROM touched)""")
        narrowed.add(partner)
    for partner in partners:
        con.execute(f"CREATE OR REPLACE TEMP VIEW stg_{partner} AS SELECT * FROM touched_stg_{partner}")
    try:
        yield
    finally:
        for partner in partners:
            con.execute(f"CREATE OR REPLACE TEMP VIEW stg_{partner} AS {staged[partner]}")


def _kb_tables(con, prep: Prepared, carried: Carried) -> int:
    """Step 4: the kb tables from staging (sql/kb), persons held back left out. Returns how many
    persons' rows were made again in tables carried forward by person."""
    con.register("held_back_rows", prep.held_back)
    con.execute("CREATE TEMP TABLE excluded AS SELECT pseudonym FROM held_back_rows")
    staged = {partner: f"""SELECT * FROM ({latest.select_sql()})
                           WHERE pseudonym NOT IN (SELECT pseudonym FROM excluded)"""
              for partner, (latest, _) in prep.current.items()}
    for partner, select in staged.items():
        con.execute(f"CREATE TEMP VIEW stg_{partner} AS {select}")
    with timing.stage("kb"):
        if carried.persons:  # the persons in each partner's new deliveries (but for those held back)
            con.execute("CREATE TEMP TABLE touched (partner VARCHAR, pseudonym VARCHAR)")
            for partner, files in sorted(carried.added.items()):
                con.execute(f"""INSERT INTO touched SELECT DISTINCT {lit(partner)}, pseudonym
                                FROM read_parquet({_files_sql(files)}, union_by_name = true)
                                WHERE pseudonym IS NOT NULL AND pseudonym NOT IN (SELECT pseudonym FROM excluded)""")
        narrowed: set[str] = set()
        try:
            for path in sql_files("kb"):
                if path.stem in carried.persons:
                    with _touched_rows_only(con, staged, carried.persons[path.stem], narrowed):
                        _refresh(con, path, carried.persons[path.stem], persons=True)
                elif path.stem in carried.refresh:
                    _refresh(con, path, carried.refresh[path.stem])
                elif path.stem not in carried.tables:
                    con.execute(path.read_text())
        finally:  # the touched persons' rows are not held through the indicators
            for partner in narrowed:
                con.execute(f"DROP TABLE IF EXISTS touched_stg_{partner}")
    return con.sql("SELECT count(DISTINCT pseudonym) FROM touched").fetchall()[0][0] if carried.persons else 0


DELIVERIES_COLUMNS = {
    "partner": "VARCHAR", "period": "VARCHAR", "file": "VARCHAR", "rows_read": "BIGINT", "rows_loaded": "BIGINT",
    "rows_quarantined": "BIGINT", "status": "VARCHAR", "reason": "VARCHAR", "previous_version_kept": "BOOLEAN",
    "rows_in_place": "BIGINT", "content_sha256": "VARCHAR", "key_fingerprint": "VARCHAR",
    "codes_redacted_in_names": "BIGINT", "codes_redacted_in_values": "BIGINT", "in_landing_zone": "BOOLEAN"}


def _delivery_row(d: dict, present: set | None) -> tuple:
    last, loaded = d["last_attempt"], d.get("loaded")
    kept = last["status"] == "rejected" and loaded is not None
    return (d["partner"], d["period"], last["file"], last["rows_read"], last["rows_loaded"], last["rows_quarantined"],
            last["status"], last["reason"], kept, loaded["rows_loaded"] if loaded else 0, last["content_sha256"],
            loaded["key_fingerprint"] if loaded else None, last.get("codes_redacted_in_names", 0),
            last.get("codes_redacted_in_values", 0),
            None if present is None else (d["partner"], d["period"]) in present)


def _ledger_tables(con, prep: Prepared, landing_scan: tuple | None) -> None:
    """Step 5: what was delivered and what became of it (kb.deliveries, kb.quarantine,
    kb.landing_ignored) and the partner signatures of this build (kb.build_inputs)."""
    con.execute(f"CREATE TABLE kb.deliveries ({', '.join(f'{n} {t}' for n, t in DELIVERIES_COLUMNS.items())})")
    present = {(d.partner, d.period) for d in landing_scan[0]} if landing_scan else None
    rows = [_delivery_row(d, present) for d in prep.deliveries]
    if rows:
        con.executemany(f"INSERT INTO kb.deliveries VALUES ({', '.join(['?'] * len(DELIVERIES_COLUMNS))})", rows)
    con.execute("CREATE TABLE kb.landing_ignored (path VARCHAR, reason VARCHAR, codes_redacted BIGINT)")
    ignored = [(i.path, i.reason, i.codes_redacted) for i in landing_scan[1]] if landing_scan else []
    if ignored:
        con.executemany("INSERT INTO kb.landing_ignored VALUES (?, ?, ?)", ignored)
    q_files = [d["dir"] / "quarantine.parquet" for d in prep.deliveries
               if d.get("loaded") and (d["dir"] / "quarantine.parquet").exists()]
    con.execute("CREATE TABLE kb.quarantine (partner VARCHAR, period VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR)")
    if q_files:
        con.execute(f"INSERT INTO kb.quarantine SELECT partner, period, file, line, reason "
                    f"FROM read_parquet({_files_sql(q_files)}) ORDER BY partner, period, line")
    con.execute("CREATE TABLE kb.build_inputs (partner VARCHAR, signature VARCHAR)")
    con.executemany("INSERT INTO kb.build_inputs VALUES (?, ?)", sorted(prep.signatures.items()))


def as_of_date(prep: Prepared, contracts: dict[str, Contract]) -> dt.date | None:
    """The last day of the latest loaded period of the ``as_of`` partners (of any partner
    when they have none)."""
    loaded = [d for d in prep.deliveries if d.get("loaded")]
    of_role = [d["period"] for d in loaded if d["partner"] in with_role(contracts, "as_of")]
    periods = of_role or [d["period"] for d in loaded]
    if not periods:
        return None
    y, m = map(int, max(periods).split("-"))
    return dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)


def _build_info(con, prep: Prepared, as_of: dt.date | None, key_fingerprint: str, parameters: dict,
                kb_sql: str, ind_sql: str) -> None:
    """Step 6: kb.build_info (what this build is) and kb.parameters (the plan's assumptions)."""
    con.execute("""CREATE TABLE kb.build_info AS SELECT
            ?::DATE AS as_of, ?::TIMESTAMP AS built_at, ? AS key_fingerprint, ? AS pipeline_version,
            ? AS consent_snapshot_period,
            (SELECT count(*) FROM kb.clients WHERE programme_client) AS programme_clients,
            ?::BIGINT AS awaiting_consent, ?::BIGINT AS withdrawn_erased,
            (SELECT count(*) FROM kb.clients WHERE NOT programme_client) AS comparison_population,
            ? AS exclusion_digest, ? AS kb_sql_sha256, ? AS ind_sql_sha256""",
                [as_of, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), key_fingerprint, PIPELINE_VERSION,
                 prep.consent_period, prep.held_back.num_rows, prep.withdrawn, prep.exclusion, kb_sql, ind_sql])
    s, sup = parameters["savings_scenario"], parameters["suppression"]
    con.execute("""CREATE TABLE kb.parameters AS SELECT ?::INTEGER AS long_term_unemployed,
            ?::DOUBLE AS employment_rate, ?::DECIMAL(14, 2) AS municipal_labour_market_subsidy_eur,
            ?::DECIMAL(14, 2) AS social_assistance_eur, ?::INTEGER AS suppression_threshold,
            ?::INTEGER AS rounding_base, ?::INTEGER AS midpoint_rounding""",
                [s["long_term_unemployed"], s["employment_rate"], s["municipal_labour_market_subsidy_eur"],
                 s["social_assistance_eur"], sup["threshold"], sup["rounding_base"], sup["midpoint_rounding"]])


def _indicators(con) -> None:
    """Step 7: the ind views and tables (sql/ind, in dependency order) and their documentation."""
    for path in sql_files("ind"):
        with timing.stage(_stage_of(path.stem)):
            con.execute(path.read_text())
    with timing.stage("ind"):
        _document(con)


def check_before_swap(con) -> dict[str, int]:
    """Step 8a: kb.clients has one row per person, or the build is not swapped in. Returns the
    rows of each kb table."""
    dupes = con.sql("SELECT count(*) - count(DISTINCT pseudonym) FROM kb.clients").fetchall()[0][0]
    if dupes:
        raise KnowledgeBaseError(f"kb.clients has {dupes} duplicate pseudonyms; the build is not swapped in")
    return {t: con.sql(f"SELECT count(*) FROM kb.{t}").fetchall()[0][0] for t in KB_TABLES + ["quarantine", "deliveries"]}


def views_answer_as_opened(building: Path, target: Path) -> dict[str, pa.Table]:
    """Step 8b: every contract view answers on the finished file opened read-only, as evaluators
    will open it (a view that leans on something of the build's own session fails here), or the
    build is not swapped in. Returns each view's answer: the one evaluation of the views per build
    (the matching quality is read from it, and it is kept for the report: :mod:`pipelines.view_answers`)."""
    with timing.stage("impact"):   # the impact views are most of what this asks for
        with connect(str(building), read_only=True) as con:
            rows = view_answers.evaluate(con, building, target, REQUIRED_VIEWS)
    if silent := [v for v, table in rows.items() if table is None]:
        raise KnowledgeBaseError(f"indicator view(s) {', '.join(silent)} do not answer; the build is not swapped in")
    return rows


def build(staging: Path, target: Path, contracts: dict[str, Contract], key_fingerprint: str,
          parameters: dict | None = None, landing_scan: tuple | None = None) -> BuildResult:
    """Build the knowledge base from staging into ``target`` atomically, step by step.

    ``landing_scan`` is ``(deliveries, ignored)`` of the landing zone now: it marks which
    loaded deliveries are no longer there and lists what the landing zone holds that is
    not a delivery (unknown when not given)."""
    staging, target = Path(staging), Path(target)
    parameters = parameters or load_parameters()
    building, copy = _start_new_file(target)
    try:
        with timing.stage("latest"):
            prep = prepare(staging, contracts, key_fingerprint)
        kb_sql = sql_digest("kb")  # compared with the previous build's, and recorded for the next
        ind_sql = hashlib.sha256(f"{sql_digest('ind')} duckdb {duckdb.__version__}".encode()).hexdigest()
        carried = carried_tables(target, key_fingerprint, prep, contracts, kb_sql, ind_sql)
        as_of = as_of_date(prep, contracts)
        con = _open_new_file(building, copy, carried)
    except BaseException:
        if copy is not None:
            copy.discard()
        raise
    try:
        touched = _kb_tables(con, prep, carried)
        _ledger_tables(con, prep, landing_scan)
        _build_info(con, prep, as_of, key_fingerprint, parameters, kb_sql, ind_sql)
        regions.write_kb_tables(con, target.parent)  # kb.region, kb.municipalities (DATA/region.json)
        _indicators(con)
        tables = check_before_swap(con)
        programme_clients = con.sql("SELECT programme_clients FROM kb.build_info").fetchall()[0][0]
        con.execute("CHECKPOINT")
        con.close()
        answers = views_answer_as_opened(building, target)
        views = {v: table.num_rows for v, table in answers.items()}
        matching = impact.quality_of(*(answers[v] for v in impact.VIEWS))
    except BaseException:
        con.close()
        building.unlink(missing_ok=True)
        view_answers.discard(target)
        raise
    os.replace(building, target)
    view_answers.swap_in(target)
    return BuildResult(target, as_of, tables["clients"], programme_clients, prep.held_back.num_rows, prep.withdrawn,
                       prep.purged_rows, tables, sorted(carried.tables), views,
                       {t: sorted(p) for t, p in sorted(carried.refresh.items())},
                       {t: sorted(p) for t, p in sorted(carried.persons.items())}, touched, matching)
