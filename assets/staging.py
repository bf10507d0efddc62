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
from functools import cache
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets import timing
from assets.landing import Delivery
from pseudonymize import PseudonymKey, pseudonymize_column
from schemas.casting import cast_and_validate
from schemas.contract import Contract
from schemas.readers import DeliveryRejected, read_delivery

QUARANTINE_SCHEMA = pa.schema([("partner", pa.string()), ("period", pa.string()), ("file", pa.string()),
                               ("line", pa.int64()), ("reason", pa.string())])
PIPELINE_VERSION = "1"
MEMORY_LIMIT = "2GB"  # DuckDB spills beyond this: national builds stay within a 4 GB machine budget  # bump when staging output changes shape: every delivery is re-staged


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


def contract_sha256(contract: Contract) -> str:
    return hashlib.sha256(contract.path.read_bytes() + PIPELINE_VERSION.encode()).hexdigest()


def period_dir(staging: Path, partner: str, period: str) -> Path:
    return Path(staging) / partner / period


def read_state(staging: Path, partner: str, period: str) -> dict:
    path = period_dir(staging, partner, period) / "delivery.json"
    return json.loads(path.read_text()) if path.exists() else {"loaded": None, "last_attempt": None}


def staged_fingerprints(staging: Path) -> set[str]:
    """Key fingerprints of every loaded delivery in staging."""
    found = set()
    for path in Path(staging).glob("*/*/delivery.json"):
        loaded = json.loads(path.read_text()).get("loaded")
        if loaded:
            found.add(loaded["key_fingerprint"])
    return found


def check_key(staging: Path, key: PseudonymKey) -> None:
    """Refuse to mix pseudonyms made under two keys in one data directory."""
    other = staged_fingerprints(staging) - {key.fingerprint}
    if other:
        shown = ", ".join(sorted(f[:12] for f in other))
        raise StagingError(f"staging in {staging} was pseudonymised with key fingerprint {shown}, not "
                           f"{key.short_fingerprint}: use the original key file, or a new data directory")


def needs_staging(staging: Path, delivery: Delivery, contract: Contract, key: PseudonymKey) -> bool:
    """Only new or changed deliveries (content hash, contract or key) are staged again."""
    last = read_state(staging, delivery.partner, delivery.period)["last_attempt"]
    return not (last and last["content_sha256"] == delivery.content_sha256
                and last["contract_sha256"] == contract_sha256(contract)
                and last["key_fingerprint"] == key.fingerprint and last["file"] == delivery.file_name)


@cache
def _connection() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for all staging in this process (a new one costs ~13 ms)."""
    con = duckdb.connect(config={"threads": 2, "memory_limit": MEMORY_LIMIT,
                                 "temp_directory": str(Path(tempfile.gettempdir()) / "tyokyky-duckdb")})
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


def _consent_tokens(contract: Contract, loaded: pa.Table) -> pa.Table:
    """Consent snapshot rows: withdrawn rows keep only an erasure token, never the pseudonym.

    The token is SHA-256 of the pseudonym: it lets later builds erase the person from
    deliveries that arrive after the withdrawal, but names no one by itself.
    """
    withdrawn = contract.column(contract.consent["withdrawn"]).target
    with _connection().cursor() as con:
        con.register("consent_rows", loaded)
        try:
            return con.sql(f"""
                SELECT * REPLACE (
                    CASE WHEN "{withdrawn}" IS NULL THEN pseudonym END AS pseudonym,
                    CASE WHEN "{withdrawn}" IS NULL THEN birth_year END AS birth_year,
                    CASE WHEN "{withdrawn}" IS NULL THEN sex END AS sex,
                    CASE WHEN "{withdrawn}" IS NULL THEN temporary_id END AS temporary_id),
                    sha256(pseudonym) AS erasure_token
                FROM consent_rows""").to_arrow_table()
        finally:
            con.unregister("consent_rows")


def _swap_in(target: Path, files: dict[str, pa.Table | dict]) -> None:
    """Write files into a fresh folder beside ``target`` and replace ``target`` with it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = target.with_name(target.name + ".new")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    for name, content in files.items():
        if isinstance(content, pa.Table):
            _write_parquet(content, fresh / name)
        else:
            (fresh / name).write_text(json.dumps(content, indent=1, ensure_ascii=False))
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(fresh, target)
    shutil.rmtree(old, ignore_errors=True)


def _record_rejection(staging: Path, delivery: Delivery, contract: Contract, key: PseudonymKey,
                      reason: str, rows_read: int) -> Attempt:
    target = period_dir(staging, delivery.partner, delivery.period)
    state = read_state(staging, delivery.partner, delivery.period)
    attempt = Attempt(delivery.file_name, delivery.content_sha256, "rejected", reason, rows_read, 0, 0,
                      key.fingerprint, contract_sha256(contract), _now())
    state.update(partner=delivery.partner, period=delivery.period, last_attempt=asdict(attempt))
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "delivery.json.new"
    tmp.write_text(json.dumps(state, indent=1, ensure_ascii=False))
    os.replace(tmp, target / "delivery.json")
    return attempt


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def stage_delivery(staging: Path, delivery: Delivery, contract: Contract, key: PseudonymKey) -> Attempt:
    """Stage one delivery; a rejection is recorded, never raised."""
    if delivery.problem:
        return _record_rejection(staging, delivery, contract, key, delivery.problem, 0)
    try:
        with timing.stage("read"):
            result = read_delivery(contract, delivery.file, delivery.period)
    except DeliveryRejected as e:
        return _record_rejection(staging, delivery, contract, key, str(e), 0)
    timing.add_rows("read", result.rows_read)

    with timing.stage("pseudonymise", result.table.num_rows):
        ids = pseudonymize_column(result.table.column(contract.identifier), key)
        table = result.table.drop_columns([contract.identifier])  # the raw code goes no further
        for name in ids.column_names:
            table = table.append_column(name, ids.column(name))
    rows_read, row_errors = result.rows_read, result.row_errors
    del result  # the raw rows (with identity codes) are dropped as early as possible
    with timing.stage("stage", table.num_rows):
        return _validate_and_write(staging, delivery, contract, key, table, rows_read, row_errors)


def _validate_and_write(staging: Path, delivery: Delivery, contract: Contract, key: PseudonymKey,
                        table: pa.Table, rows_read: int, row_errors: list[tuple[int, str]]) -> Attempt:
    """Type and check the pseudonymised rows, then swap the period's new version in."""
    with _connection().cursor() as con:  # a cursor per delivery: deliveries may stage in parallel
        loaded, quarantined = cast_and_validate(contract, table, con)

    lines = [n for n, _ in row_errors] + quarantined.column("line").to_pylist()
    reasons = [r for _, r in row_errors] + quarantined.column("reason").to_pylist()
    order = sorted(range(len(lines)), key=lines.__getitem__)
    quarantine = _quarantine_table(delivery, [lines[i] for i in order], [reasons[i] for i in order])
    if contract.consent:
        loaded = _consent_tokens(contract, loaded)
    loaded = loaded.append_column("delivery_period", pa.array([delivery.period] * loaded.num_rows, pa.string()))

    attempt = Attempt(delivery.file_name, delivery.content_sha256, "loaded", None, rows_read,
                      loaded.num_rows, quarantine.num_rows, key.fingerprint, contract_sha256(contract), _now())
    assert attempt.rows_read == attempt.rows_loaded + attempt.rows_quarantined, "row accounting broken"
    state = {"partner": delivery.partner, "period": delivery.period,
             "loaded": asdict(attempt), "last_attempt": asdict(attempt)}
    _swap_in(period_dir(staging, delivery.partner, delivery.period),
             {"rows.parquet": loaded, "quarantine.parquet": quarantine, "delivery.json": state})
    return attempt
