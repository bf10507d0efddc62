"""Stage one delivery: read → pseudonymise → type and validate → Parquet + quarantine.

The identity code is pseudonymised straight after reading; from there on only the
pseudonym, birth year, sex and temporary flag travel. Each (partner, period) lives
in ``<staging>/<partner>/<period>/``:

* ``rows.parquet`` — the loaded rows of the version in place;
* ``quarantine.parquet`` — (partner, period, file, line, reason) of its row errors;
* ``delivery.json`` — what is loaded (``loaded``) and what was last seen (``last_attempt``).

A new version is written beside the old one and swapped in whole, so a crash or a
rejected re-delivery leaves the previous version of that period in place.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import timing
from pipelines.landing import Delivery
from pipelines.limits import STAGING_DUCKDB_MEMORY, connect
from pipelines.sealed_intake import read_any
from pseudonymize import PseudonymKey, PseudonymMemo, pseudonymize_column
from pseudonymize.redact import MARKER, PATTERN, redact
from schemas.casting import validate_chunk, write_loaded
from schemas.contract import Contract
from schemas.readers import BLOCK_ROWS, DeliveryRejected, ReadResult

QUARANTINE_SCHEMA = pa.schema([("partner", pa.string()), ("period", pa.string()), ("file", pa.string()),
                               ("line", pa.int64()), ("reason", pa.string())])
PIPELINE_VERSION = "1"   # bump when staging output changes shape: every delivery is re-staged
CHUNK_ROWS = BLOCK_ROWS   # rows pseudonymised and checked at a time (a reader's block, freed once checked)


class StagingError(Exception):
    """Staging cannot go on (e.g. pseudonyms of another key); one line for the user."""


@dataclass
class Attempt:
    file: str
    content_sha256: str
    status: str                 # "loaded" / "rejected"
    reason: str | None
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    key_fingerprint: str
    contract_sha256: str
    at: str
    codes_redacted_in_names: int = 0   # identity codes replaced in the file's name
    codes_redacted_in_values: int = 0  # free-text values in which an identity code was replaced
    rows_erased: int = 0               # loaded rows of persons already withdrawn: never written


@dataclass(frozen=True)
class Withdrawal:
    """The persons withdrawn when a batch stages (erasure tokens) and the set's digest."""

    tokens: pa.Table
    digest: str


def contract_sha256(contract: Contract) -> str:
    return hashlib.sha256(contract.path.read_bytes() + PIPELINE_VERSION.encode()).hexdigest()


def period_dir(staging: Path, partner: str, period: str) -> Path:
    return Path(staging) / partner / period


def read_state(staging: Path, partner: str, period: str) -> dict:
    path = period_dir(staging, partner, period) / "delivery.json"
    return json.loads(path.read_text()) if path.exists() else {"loaded": None, "last_attempt": None}


def delivery_states(staging: Path) -> list[dict]:
    """Every delivery's state in staging (``delivery.json``), with its folder as ``dir``."""
    out = []
    for path in sorted(Path(staging).glob("*/*/delivery.json")):
        state = json.loads(path.read_text())
        state["dir"] = path.parent
        out.append(state)
    return out


def rows_file(state: dict) -> Path | None:
    """The loaded rows of a delivery state, if it has any."""
    f = state["dir"] / "rows.parquet"
    return f if state.get("loaded") and f.exists() else None


def write_state(folder: Path, state: dict) -> None:
    """Replace ``folder/delivery.json`` whole (a crash leaves the old or the new, never half)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "delivery.json.new"
    tmp.write_text(json.dumps({k: v for k, v in state.items() if k != "dir"}, indent=1, ensure_ascii=False))
    os.replace(tmp, folder / "delivery.json")


def staged_fingerprints(staging: Path) -> set[str]:
    """Key fingerprints of every loaded delivery in staging."""
    return {d["loaded"]["key_fingerprint"] for d in delivery_states(staging) if d.get("loaded")}


def other_keys(fingerprints: set[str], key_fingerprint: str) -> str | None:
    """The short fingerprints of keys other than ``key_fingerprint`` among ``fingerprints`` (None if
    none): pseudonyms made under two keys never meet in one data directory."""
    other = fingerprints - {key_fingerprint}
    return ", ".join(sorted(f[:12] for f in other)) if other else None


def check_key(staging: Path, key: PseudonymKey) -> None:
    """Refuse to stage with another key than staging was made with."""
    if shown := other_keys(staged_fingerprints(staging), key.fingerprint):
        raise StagingError(f"staging in {staging} was pseudonymised with key fingerprint {shown}, not "
                           f"{key.short_fingerprint}: use the original key file, or a new data directory")


def needs_staging(staging: Path, delivery: Delivery, contract: Contract, key: PseudonymKey | None) -> bool:
    """Only new or changed deliveries (content hash, contract or key) are staged again.
    Without the key (the sensor does not load it) a change of key is not seen here."""
    last = read_state(staging, delivery.partner, delivery.period)["last_attempt"]
    return not (last and last["content_sha256"] == delivery.content_sha256
                and last["contract_sha256"] == contract_sha256(contract)
                and (key is None or last["key_fingerprint"] == key.fingerprint) and last["file"] == delivery.file_name)


@cache
def _connection() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for all staging in this process (a new one costs ~13 ms)."""
    con = connect(temp_directory=str(Path(tempfile.gettempdir()) / "tyokyky-duckdb"), memory_limit=STAGING_DUCKDB_MEMORY)
    return con


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def _quarantine_table(delivery: Delivery, lines: list[int], reasons: list[str]) -> pa.Table:
    n = len(lines)
    return pa.table({
        "partner": pa.array([delivery.partner] * n, pa.string()),
        "period": pa.array([delivery.period] * n, pa.string()),
        "file": pa.array([delivery.file_name] * n, pa.string()),
        "line": pa.array(lines, pa.int64()),
        "reason": pa.array(reasons, pa.string()),
    }, schema=QUARANTINE_SCHEMA)


def _fresh_folder(target: Path) -> Path:
    """An empty folder beside ``target`` to write a new version into."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = target.with_name(target.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    return fresh


def _swap_in(fresh: Path, target: Path) -> None:
    """Replace ``target`` with the completed ``fresh`` folder (the old version is dropped whole)."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(fresh, target)
    shutil.rmtree(old, ignore_errors=True)


def recover(staging: Path) -> list[str]:
    """Finish or undo what a killed run left half-done in staging (under the data lock).

    A ``.new`` folder holds ``delivery.json`` only once complete: if the swap was cut
    between its two renames, the complete new version goes in place; otherwise the
    version in place (or the ``.old`` one it was moved to) stays. Temporary files of
    erasure and caches are removed. Returns what was done."""
    notes = []
    staging = Path(staging)
    for fresh in sorted(staging.glob("*/*.new")):
        target = fresh.with_name(fresh.name[:-len(".new")])
        old = target.with_name(target.name + ".old")
        if not target.exists() and (fresh / "delivery.json").exists():
            os.replace(fresh, target)
            notes.append(f"completed the interrupted staging of {target.parent.name} {target.name}")
        else:
            shutil.rmtree(fresh)
            notes.append(f"removed the unfinished staging of {target.parent.name} {target.name}")
        if old.exists() and not target.exists():
            os.replace(old, target)
    for old in sorted(staging.glob("*/*.old")):
        target = old.with_name(old.name[:-len(".old")])
        if target.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, target)
            notes.append(f"restored the previous staging of {target.parent.name} {target.name}")
    for pattern in ("*/*/*.purging", "*/*.parquet.tmp", "*/*.json.tmp", "*/*/delivery.json.new",
                    "*/*/delivery.json.tmp", "*.tmp"):
        for leftover in staging.glob(pattern):
            leftover.unlink()
    return notes


def _record_rejection(staging: Path, delivery: Delivery, contract: Contract, key: PseudonymKey,
                      reason: str, rows_read: int) -> Attempt:
    target = period_dir(staging, delivery.partner, delivery.period)
    state = read_state(staging, delivery.partner, delivery.period)
    attempt = Attempt(delivery.file_name, delivery.content_sha256, "rejected", redact(reason), rows_read, 0, 0,
                      key.fingerprint, contract_sha256(contract), _now(), delivery.names_redacted)
    state.update(partner=delivery.partner, period=delivery.period, last_attempt=asdict(attempt))
    write_state(target, state)
    return attempt


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def redact_free_text(contract: Contract, table: pa.Table) -> tuple[pa.Table, int]:
    """Free-text columns are partner-typed: an identity code in one is replaced by the
    redaction marker before anything is written. Returns the table and how many values
    had a code."""
    hits = 0
    for c in contract.columns:
        if c.type != "text" or c.name not in table.column_names:
            continue
        i = table.column_names.index(c.name)
        column = table.column(i)
        found = pc.sum(pc.match_substring_regex(column, PATTERN)).as_py() or 0
        if found:
            hits += found
            table = table.set_column(i, c.name, pc.replace_substring_regex(column, PATTERN, MARKER))
    return table, hits


def stage_delivery(staging: Path, delivery: Delivery, contract: Contract, key: PseudonymKey,
                   memo: PseudonymMemo | None = None, withdrawal: Withdrawal | None = None) -> Attempt:
    """Stage one delivery; a rejection is recorded, never raised. With the build's ``memo``, a
    code already hashed for another delivery of this build is looked up, not hashed again;
    with a ``withdrawal``, rows of persons already withdrawn are erased before they are written
    (the knowledge-base build then need not rewrite the file to purge them).

    Any fault of the file (what the spec lists, and whatever else a reader or the checks
    trip over) rejects this delivery only, with a reason that never quotes its content;
    the build goes on with the others.

    The read rows are pseudonymised and checked in chunks into DuckDB (which spills beyond
    its memory limit), the raw rows are dropped, and the loaded rows go from DuckDB to
    Parquet directly: a backlog-sized delivery never sits in memory three times over."""
    if delivery.problem:
        return _record_rejection(staging, delivery, contract, key, delivery.problem, 0)
    try:
        with timing.stage("read"):
            result = read_any(contract, delivery, key)  # raw, or pseudonymised by the partner
    except DeliveryRejected as e:
        return _record_rejection(staging, delivery, contract, key, str(e), 0)
    except OSError as e:
        return _record_rejection(staging, delivery, contract, key, f"file {delivery.file_name!r} cannot be read "
                                 f"({e.strerror}): check that it is in place and readable", 0)
    except Exception as e:  # never str(e): a parser's message can quote the file's content
        return _record_rejection(staging, delivery, contract, key, f"the file cannot be read ({type(e).__name__}): "
                                 "check that it follows the agreed format", 0)
    timing.add_rows("read", result.rows_read)
    target = period_dir(staging, delivery.partner, delivery.period)
    fresh = _fresh_folder(target)
    try:
        return _stage_rows(delivery, contract, key, result, fresh, target, memo, withdrawal)
    except (OSError, duckdb.IOException):  # a full disk is not the delivery's fault: stop, retry later
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    except DeliveryRejected as e:  # what a streamed read finds only on its second pass
        shutil.rmtree(fresh, ignore_errors=True)
        return _record_rejection(staging, delivery, contract, key, str(e), 0)
    except Exception as e:  # the checks failed on this file: reject it, keep what is loaded
        shutil.rmtree(fresh, ignore_errors=True)
        return _record_rejection(staging, delivery, contract, key, f"the file's rows cannot be checked "
                                 f"({type(e).__name__}): check that it follows the agreed format",
                                 result.rows_read)


def _timed_pieces(result: ReadResult) -> Iterator[pa.Table]:
    """The read's pieces of at most CHUNK_ROWS rows; making one (a streamed read) counts as reading."""
    pieces = result.pieces(CHUNK_ROWS)
    while True:
        with timing.stage("read"):
            piece = next(pieces, None)
        if piece is None:
            return
        yield piece
        del piece


def _stage_rows(delivery: Delivery, contract: Contract, key: PseudonymKey, result: ReadResult, fresh: Path,
                target: Path, memo: PseudonymMemo | None, withdrawal: Withdrawal | None) -> Attempt:
    redacted = result.codes_redacted  # made by the partner (a pseudonymised delivery)
    with _connection().cursor() as con:  # a cursor per delivery: deliveries may stage in parallel
        first = True
        for chunk in _timed_pieces(result):  # each piece is dropped once checked
            chunk, hits = redact_free_text(contract, chunk)
            redacted += hits
            with timing.stage("pseudonymise", chunk.num_rows):
                ids = pseudonymize_column(chunk.column(contract.identifier), key, memo)
                chunk = chunk.drop_columns([contract.identifier])  # the raw code goes no further
                for name in ids.column_names:
                    chunk = chunk.append_column(name, ids.column(name))
            with timing.stage("stage", chunk.num_rows):
                validate_chunk(contract, chunk, con, first=first)
            first = False
            del chunk, ids
        # the raw rows (with identity codes) are gone before anything is written
        with timing.stage("stage"):
            if withdrawal is not None:
                con.register("withdrawn_tokens", withdrawal.tokens)
            written, quarantined, erased = write_loaded(contract, con, str(fresh / "rows.parquet"), delivery.period,
                                                        "withdrawn_tokens" if withdrawal is not None else None)
            rows_loaded = written + erased

    rows_read, row_errors = result.rows_read, result.row_errors  # complete once every piece is read
    lines = [n for n, _ in row_errors] + quarantined.column("line").to_pylist()
    reasons = [r for _, r in row_errors] + quarantined.column("reason").to_pylist()
    order = sorted(range(len(lines)), key=lines.__getitem__)
    quarantine = _quarantine_table(delivery, [lines[i] for i in order], [reasons[i] for i in order])
    attempt = Attempt(delivery.file_name, delivery.content_sha256, "loaded", None, rows_read,
                      rows_loaded, quarantine.num_rows, key.fingerprint, contract_sha256(contract), _now(),
                      delivery.names_redacted, redacted, erased)
    assert attempt.rows_read == attempt.rows_loaded + attempt.rows_quarantined, "row accounting broken"
    _write_parquet(quarantine, fresh / "quarantine.parquet")
    state = {"partner": delivery.partner, "period": delivery.period,
             "loaded": asdict(attempt), "last_attempt": asdict(attempt)}
    if withdrawal is not None and not contract.consent:  # checked against this withdrawal set already
        state["erasure_checked"] = withdrawal.digest
    (fresh / "delivery.json").write_text(json.dumps(state, indent=1, ensure_ascii=False))
    _swap_in(fresh, target)
    return attempt
