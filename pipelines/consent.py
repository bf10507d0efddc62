"""Consent: the latest loaded snapshot alone is the truth; who has withdrawn, and its digest.

Shared by the staging batch (rows of persons already withdrawn are never written) and the
knowledge-base build (rows staged before a withdrawal are purged from staging).
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.limits import connect
from pipelines.staging import delivery_states, rows_file
from schemas.casting import lit, q
from schemas.contract import Contract


def load(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract], states: list[dict]) -> dict | None:
    """Temp tables ``consent`` and ``withdrawn`` from the latest loaded consent snapshot among
    ``states``; returns that snapshot's delivery state (None when there is none)."""
    consent_partner = next((p for p, c in contracts.items() if c.consent), None)
    snapshots = [d for d in states if d["partner"] == consent_partner and rows_file(d)]
    latest = max(snapshots, key=lambda d: d["period"]) if snapshots else None
    if latest:
        c = contracts[consent_partner]
        given = c.column(c.consent["given"]).target
        withdrawn = c.column(c.consent["withdrawn"]).target
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE consent AS
            SELECT erasure_token,
                   arg_max(pseudonym, ({q(given)}, {q(withdrawn)} IS NOT NULL)) AS pseudonym,
                   arg_max({q(withdrawn)} IS NOT NULL, ({q(given)}, {q(withdrawn)} IS NOT NULL)) AS is_withdrawn
            FROM read_parquet({lit(str(rows_file(latest)))}) GROUP BY erasure_token""")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE consent (erasure_token VARCHAR, pseudonym VARCHAR, is_withdrawn BOOLEAN)")
    con.execute("CREATE OR REPLACE TEMP TABLE withdrawn AS SELECT erasure_token FROM consent WHERE is_withdrawn")
    return latest


def digest(con: duckdb.DuckDBPyConnection) -> str:
    """Identifies the set of withdrawn persons (their erasure tokens, from ``withdrawn``)."""
    return con.sql("SELECT sha256(coalesce(string_agg(erasure_token, ',' ORDER BY erasure_token), '')) "
                   "FROM withdrawn").fetchall()[0][0]


def withdrawal_set(staging: Path, contracts: dict[str, Contract]) -> tuple[pa.Table, str]:
    """(erasure tokens of the persons withdrawn in the latest staged snapshot, their digest)."""
    with connect() as con:
        load(con, contracts, delivery_states(staging))
        return con.sql("SELECT erasure_token FROM withdrawn").to_arrow_table(), digest(con)
