"""Scan every output of a build for identity codes — decompressed, not just as bytes.

Parquet and DuckDB compress their pages and a PDF its streams, so a byte search alone
proves little: Parquet is read back, DuckDB queried column by column, PDF text
extracted, and every other file (Dagster's SQLite storage, logs, JSON) read as bytes.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

HETU_LIKE = re.compile(r"\d{6}[-+A-Fa-fU-Yu-y]\d{3}[0-9A-Ya-y]")


def landing_codes(landing: Path) -> set[str]:
    """Every identity-code-like string of the landing zone, as delivered and normalised."""
    import openpyxl

    codes: set[str] = set()
    for f in Path(landing).rglob("*"):
        if not f.is_file():
            continue
        if f.suffix == ".xlsx":
            wb = openpyxl.load_workbook(f, read_only=True)
            text = " ".join(str(c) for ws in wb for row in ws.iter_rows(values_only=True) for c in row if c)
        else:
            text = f.read_bytes().decode("latin-1")
        for m in re.finditer(r"[0-9A-Za-z+/ -]{11,13}", text):
            raw = m.group(0)
            for candidate in {raw.strip(), raw.strip().upper()}:
                if len(candidate) == 11 and candidate[:6].isdigit():
                    codes.add(candidate)
    return codes


def _texts(path: Path):
    if path.suffix == ".parquet":
        yield " ".join(str(v) for col in pq.read_table(path).columns for v in col.to_pylist())
    elif path.suffix == ".duckdb":
        con = duckdb.connect(str(path), read_only=True)
        try:
            for schema, table in con.sql("SELECT schema_name, table_name FROM duckdb_tables()").fetchall():
                rel = con.sql(f'SELECT * FROM "{schema}"."{table}"')
                yield " ".join(str(v) for row in rel.fetchall() for v in row)
        finally:
            con.close()
    elif path.suffix == ".pdf":
        from pypdf import PdfReader

        yield " ".join(page.extract_text() or "" for page in PdfReader(path).pages)
    yield path.read_bytes().decode("latin-1")


def scan(outputs: list[Path], codes: set[str]) -> list[str]:
    """Where any of ``codes`` (or any lowercase/uppercase form) appears in the outputs."""
    found = []
    wanted = {c.upper() for c in codes}
    for root in outputs:
        for path in ([root] if root.is_file() else sorted(root.rglob("*"))):
            if not path.is_file():
                continue
            for text in _texts(path):
                for m in HETU_LIKE.finditer(text):
                    if m.group(0).upper() in wanted:
                        found.append(f"{path}: {m.group(0)[:4]}…")
    return found
